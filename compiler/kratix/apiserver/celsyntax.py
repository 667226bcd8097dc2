"""CEL expressions parsed into a syntax tree, with the macros expanded as cel-go expands them.

In: the text of an expression the `cel` package has already compiled (so it is valid CEL). Out: an `Expr` tree
of `Literal`, `Ident`, `Select` (`has()` is a test-only select), `Call` (operators are calls named as cel-go
names them: `_+_`, `_&&_`, `!_`, `_[_]`, `@in`, `_?_:_`), `ListExpr`, `MapExpr`, `StructExpr` and
`Comprehension` (`all`, `exists`, `exists_one`, `map`, `filter`, expanded into the same loop cel-go builds,
so that a cost model can count what cel-go counts). Namespaced functions (`sets.contains(a, b)`) are calls of
their qualified name. Refused with `CelSyntaxError`: text this parser does not read (which the `cel` package
accepted), so a caller can say so rather than guess.

The `cel` package exposes no syntax tree; this one exists for what the package cannot say about an expression:
its worst-case cost, and its constant regular expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ACCUMULATOR = "@result"  # cel-go's name for a comprehension's accumulator
# Function namespaces of the CEL extension libraries: `sets.contains(a, b)` is one function, not a method of `sets`.
NAMESPACES = frozenset({"sets", "math", "base64", "strings", "lists", "optional"})


class CelSyntaxError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class Literal:
    value: Any
    kind: str  # "int", "uint", "double", "string", "bytes", "bool", "null"


@dataclass(frozen=True, eq=False)
class Ident:
    name: str


@dataclass(frozen=True, eq=False)
class Select:
    operand: Expr
    field: str
    test_only: bool = False  # has(operand.field)


@dataclass(frozen=True, eq=False)
class Call:
    function: str
    args: tuple[Expr, ...]
    target: Expr | None = None  # the receiver of a method call (`x.startsWith(y)`)


@dataclass(frozen=True, eq=False)
class ListExpr:
    elements: tuple[Expr, ...]


@dataclass(frozen=True, eq=False)
class MapExpr:
    entries: tuple[tuple[Expr, Expr], ...]


@dataclass(frozen=True, eq=False)
class StructExpr:
    type_name: str
    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, eq=False)
class Comprehension:
    iter_range: Expr
    iter_var: str
    accu_var: str
    accu_init: Expr
    loop_condition: Expr
    loop_step: Expr
    result: Expr
    iter_var2: str | None = None  # two-variable comprehensions: (index or key, value)


Expr = Literal | Ident | Select | Call | ListExpr | MapExpr | StructExpr | Comprehension


def parse(text: str) -> Expr:
    parser = _Parser(_tokens(text))
    expr = parser.expression()
    if parser.peek().kind != "end":
        raise CelSyntaxError(f"unexpected {parser.peek().text!r}")
    return expr


def walk(expr: Expr) -> list[Expr]:
    """Every node of the tree, parents before children."""
    found: list[Expr] = []
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        found.append(node)
        if isinstance(node, Select):
            stack.append(node.operand)
        elif isinstance(node, Call):
            stack.extend(node.args)
            if node.target is not None:
                stack.append(node.target)
        elif isinstance(node, ListExpr):
            stack.extend(node.elements)
        elif isinstance(node, MapExpr):
            stack.extend(part for entry in node.entries for part in entry)
        elif isinstance(node, StructExpr):
            stack.extend(value for _, value in node.fields)
        elif isinstance(node, Comprehension):
            stack.extend((node.iter_range, node.accu_init, node.loop_condition, node.loop_step, node.result))
    return found


# --- tokens -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "punct", "ident", "int", "uint", "double", "string", "bytes", "end"
    text: str
    value: Any = None


_PUNCTUATION = (
    "||",
    "&&",
    "==",
    "!=",
    "<=",
    ">=",
    ".?",
    "[?",
    "?",
    ":",
    "!",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "%",
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
)
_SPACE = re.compile(r"(?:\s+|//[^\n]*)+")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|(?:[0-9]+\.[0-9]+|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?[uU]?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING_START = re.compile(r"([rRbB]{0,2})('''|\"\"\"|'|\")")
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while True:
        space = _SPACE.match(text, position)
        if space:
            position = space.end()
        if position >= len(text):
            tokens.append(_Token("end", ""))
            return tokens
        string = _STRING_START.match(text, position)
        if string and string.group(1).lower() in ("", "r", "b", "rb", "br"):
            token, position = _string(text, string)
        elif number := _NUMBER.match(text, position):
            token, position = _number(number.group(0)), number.end()
        elif ident := _IDENT.match(text, position):
            token, position = _Token("ident", ident.group(0)), ident.end()
        else:
            punct = next((p for p in _PUNCTUATION if text.startswith(p, position)), None)
            if punct is None:
                raise CelSyntaxError(f"unexpected character {text[position]!r}")
            token, position = _Token("punct", punct), position + len(punct)
        tokens.append(token)


def _number(text: str) -> _Token:
    unsigned = text[-1] in "uU"
    body = text[:-1] if unsigned else text
    if body[:2] in ("0x", "0X"):
        value: Any = int(body, 16)
    elif any(c in body for c in ".eE"):
        if unsigned:
            raise CelSyntaxError(f"a double cannot be unsigned: {text}")
        return _Token("double", text, float(body))
    else:
        value = int(body)
    return _Token("uint" if unsigned else "int", text, value)


def _string(text: str, start: re.Match[str]) -> tuple[_Token, int]:
    prefix, quote = start.group(1).lower(), start.group(2)
    raw, is_bytes = "r" in prefix, "b" in prefix
    position = start.end()
    out: list[str] = []
    while True:
        if position >= len(text):
            raise CelSyntaxError("unterminated string")
        if text.startswith(quote, position):
            position += len(quote)
            break
        char = text[position]
        if char in "\r\n" and len(quote) == 1:
            raise CelSyntaxError("newline in a string")
        if char == "\\" and not raw:
            decoded, position = _escape(text, position + 1, is_bytes)
            out.append(decoded)
            continue
        out.append(char)
        position += 1
    value = "".join(out)
    if is_bytes:
        return _Token("bytes", text[start.start() : position], value.encode("utf-8", "surrogateescape")), position
    return _Token("string", text[start.start() : position], value), position


def _escape(text: str, position: int, is_bytes: bool) -> tuple[str, int]:
    char = text[position : position + 1]
    if char in _ESCAPES:
        return _ESCAPES[char], position + 1
    widths = {"x": 2, "X": 2, "u": 4, "U": 8}
    if char in widths:
        digits = text[position + 1 : position + 1 + widths[char]]
        if len(digits) != widths[char] or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise CelSyntaxError(f"bad escape \\{char}{digits}")
        code = int(digits, 16)
        # In bytes, \xHH is one byte: carried as a surrogate escape and restored by the encoding above.
        decoded = chr(0xDC00 + code) if is_bytes and char in "xX" and code > 0x7F else chr(code)
        return decoded, position + 1 + widths[char]
    if char in "0123":
        digits = text[position : position + 3]
        if len(digits) != 3 or not all(c in "01234567" for c in digits):
            raise CelSyntaxError(f"bad octal escape \\{digits}")
        code = int(digits, 8)
        return (chr(0xDC00 + code) if is_bytes and code > 0x7F else chr(code)), position + 3
    raise CelSyntaxError(f"bad escape \\{char}")


# --- parser -----------------------------------------------------------------------------------------------

_RELATIONS = {"<": "_<_", "<=": "_<=_", ">": "_>_", ">=": "_>=_", "==": "_==_", "!=": "_!=_"}
_ADDITIONS = {"+": "_+_", "-": "_-_"}
_MULTIPLICATIONS = {"*": "_*_", "/": "_/_", "%": "_%_"}


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.position = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.position += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token.kind == "punct" and token.text == text:
            self.position += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            raise CelSyntaxError(f"expected {text!r}, found {self.peek().text!r}")

    def ident(self) -> str:
        token = self.take()
        if token.kind != "ident":
            raise CelSyntaxError(f"expected a name, found {token.text!r}")
        return token.text

    def expression(self) -> Expr:
        self.depth += 1
        if self.depth > 250:  # cel-go refuses expressions nested deeper than this too
            raise CelSyntaxError("expression nested too deeply")
        condition = self.binary(0)
        if self.accept("?"):
            if_true = self.binary(0)
            self.expect(":")
            condition = Call("_?_:_", (condition, if_true, self.expression()))
        self.depth -= 1
        return condition

    _LEVELS: tuple[dict[str, str], ...] = (
        {"||": "_||_"},
        {"&&": "_&&_"},
        {**_RELATIONS, "in": "@in"},
        _ADDITIONS,
        _MULTIPLICATIONS,
    )

    def binary(self, level: int) -> Expr:
        if level == len(self._LEVELS):
            return self.unary()
        operators = self._LEVELS[level]
        left = self.binary(level + 1)
        while True:
            token = self.peek()
            name = operators.get(token.text) if token.kind in ("punct", "ident") else None
            if name is None or (token.kind == "ident" and token.text != "in"):
                return left
            self.take()
            left = Call(name, (left, self.binary(level + 1)))

    def unary(self) -> Expr:
        token = self.peek()
        if token.kind == "punct" and token.text == "!":
            count = 0
            while self.accept("!"):
                count += 1
            expr = self.member()
            for _ in range(count):
                expr = Call("!_", (expr,))
            return expr
        if token.kind == "punct" and token.text == "-":
            following = self.peek(1)
            if following.kind in ("int", "double") and not (
                self.peek(2).kind == "punct" and self.peek(2).text in (".", "[", ".?", "[?")
            ):
                self.position += 2  # a negative number is one literal, as in cel-go's grammar
                return Literal(-following.value, following.kind)
            count = 0
            while self.accept("-"):
                count += 1
            expr = self.member()
            for _ in range(count):
                expr = Call("-_", (expr,))
            return expr
        return self.member()

    def member(self) -> Expr:
        expr = self.primary()
        while True:
            if self.accept("."):
                name = self.ident()
                expr = self.method(expr, name, self.arguments(")")) if self.accept("(") else Select(expr, name)
            elif self.accept(".?"):
                expr = Call("_?._", (expr, Literal(self.ident(), "string")))
            elif self.accept("["):
                index = self.expression()
                self.expect("]")
                expr = Call("_[_]", (expr, index))
            elif self.accept("[?"):
                index = self.expression()
                self.expect("]")
                expr = Call("_[?_]", (expr, index))
            else:
                return expr

    def primary(self) -> Expr:
        token = self.take()
        if token.kind in ("int", "uint", "double", "string", "bytes"):
            return Literal(token.value, token.kind)
        if token.kind == "punct":
            if token.text == "(":
                expr = self.expression()
                self.expect(")")
                return expr
            if token.text == "[":
                return ListExpr(tuple(self.arguments("]")))
            if token.text == "{":
                return self.map_literal()
            if token.text == ".":  # a leading dot: a name from the root scope
                return self.name(self.ident())
        if token.kind == "ident":
            if token.text in ("true", "false"):
                return Literal(token.text == "true", "bool")
            if token.text == "null":
                return Literal(None, "null")
            return self.name(token.text)
        raise CelSyntaxError(f"unexpected {token.text!r}")

    def name(self, first: str) -> Expr:
        if self.accept("("):
            return self.global_call(first, self.arguments(")"))
        # A message construction `a.b.C{...}`: qualified names run up to the brace.
        parts = [first]
        start = self.position
        while self.peek().text == "." and self.peek(1).kind == "ident":
            parts.append(self.peek(1).text)
            self.position += 2
        if self.peek().kind == "punct" and self.peek().text == "{":
            self.take()
            return self.struct_literal(".".join(parts))
        self.position = start
        return Ident(first)

    def arguments(self, closing: str) -> list[Expr]:
        items: list[Expr] = []
        if self.accept(closing):
            return items
        while True:
            self.accept("?")  # an optional list element `[?x]`: costed as its value
            items.append(self.expression())
            if self.accept(closing):
                return items
            self.expect(",")
            if self.accept(closing):  # a trailing comma
                return items

    def map_literal(self) -> Expr:
        entries: list[tuple[Expr, Expr]] = []
        while not self.accept("}"):
            self.accept("?")
            key = self.expression()
            self.expect(":")
            entries.append((key, self.expression()))
            if not self.accept(","):
                self.expect("}")
                break
        return MapExpr(tuple(entries))

    def struct_literal(self, type_name: str) -> Expr:
        fields: list[tuple[str, Expr]] = []
        while not self.accept("}"):
            self.accept("?")
            name = self.ident()
            self.expect(":")
            fields.append((name, self.expression()))
            if not self.accept(","):
                self.expect("}")
                break
        return StructExpr(type_name, tuple(fields))

    def global_call(self, name: str, args: list[Expr]) -> Expr:
        if name == "has" and len(args) == 1:
            if not isinstance(args[0], Select):
                raise CelSyntaxError("has() needs a field selection")
            return Select(args[0].operand, args[0].field, test_only=True)
        return Call(name, tuple(args))

    def method(self, target: Expr, name: str, args: list[Expr]) -> Expr:
        if isinstance(target, Ident) and target.name in NAMESPACES:
            return Call(f"{target.name}.{name}", tuple(args))
        macro = _expand_macro(target, name, args)
        return macro if macro is not None else Call(name, tuple(args), target)


def _expand_macro(target: Expr, name: str, args: list[Expr]) -> Expr | None:
    """cel-go's expansion of the comprehension macros; None when `name(args)` is not one."""
    if not args or not isinstance(args[0], Ident):
        return None
    var = args[0].name
    accu = Ident(ACCUMULATOR)
    if len(args) == 3 and name in ("all", "exists", "existsOne", "exists_one") and isinstance(args[1], Ident):
        two = _quantifier(name, args[2], accu)  # two variables: (index or key, value)
        return None if two is None else Comprehension(target, var, ACCUMULATOR, *two, iter_var2=args[1].name)
    if len(args) == 2 and name in ("all", "exists", "exists_one", "existsOne"):
        one = _quantifier(name, args[1], accu)
        return None if one is None else Comprehension(target, var, ACCUMULATOR, *one)
    if name == "map" and len(args) in (2, 3):
        step: Expr = Call("_+_", (accu, ListExpr((args[-1],))))
        if len(args) == 3:
            step = Call("_?_:_", (args[1], step, accu))
        return Comprehension(target, var, ACCUMULATOR, ListExpr(()), Literal(True, "bool"), step, accu)
    if name == "filter" and len(args) == 2:
        step = Call("_?_:_", (args[1], Call("_+_", (accu, ListExpr((Ident(var),)))), accu))
        return Comprehension(target, var, ACCUMULATOR, ListExpr(()), Literal(True, "bool"), step, accu)
    return None


def _quantifier(name: str, predicate: Expr, accu: Ident) -> tuple[Expr, Expr, Expr, Expr] | None:
    """(accumulator init, loop condition, loop step, result) of all/exists/exists_one."""
    if name == "all":
        return (Literal(True, "bool"), Call("@not_strictly_false", (accu,)), Call("_&&_", (accu, predicate)), accu)
    if name == "exists":
        return (
            Literal(False, "bool"),
            Call("@not_strictly_false", (Call("!_", (accu,)),)),
            Call("_||_", (accu, predicate)),
            accu,
        )
    if name in ("exists_one", "existsOne"):
        return (
            Literal(0, "int"),
            Literal(True, "bool"),
            Call("_?_:_", (predicate, Call("_+_", (accu, Literal(1, "int"))), accu)),
            Call("_==_", (accu, Literal(1, "int"))),
        )
    return None


def escape_name(name: str) -> str | None:
    """Kubernetes' CEL name for a property (`x-y` -> `x__dash__y`, `namespace` -> `__namespace__`), or None when
    the property has no CEL name (it is then invisible to rules, as in the API server)."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.fullmatch(name):
        return None
    for plain, escaped in _NAME_ESCAPES:
        name = name.replace(plain, escaped)
    return name


_ESCAPABLE = re.compile(r"[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*")
_NAME_ESCAPES = (("__", "__underscores__"), (".", "__dot__"), ("-", "__dash__"), ("/", "__slash__"))
# CEL reserved words a property name must be escaped from (Kubernetes writes `self.__namespace__`).
_RESERVED = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)
