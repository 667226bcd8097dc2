"""Jinja2 for the native template step: sandboxed, bounded, and with values kept apart from template text.

In: a template (loaded through the caller's loader), its context and a `Budget` for one request's template step.
Out: the rendered text in which every interpolated value stands as an opaque token (`kx<nonce>n<i>k`), and the
`Tokens` mapping tokens back to values; the caller parses the YAML and puts the values in place of the tokens, so
no value can add a key or a document. Refused with `TemplateBudgetError`, raised inside the template so that its
traceback names the template and line: more steps than the budget (loop iterations, calls, attribute and item
reads, filters: a count, so a template fails the same way on every machine), more wall time than the budget (a
backstop), more output than the budget, or one value (a string, list or map) larger than the output budget, or a
number of more than `INT_BITS` bits. Jinja's sandbox refuses `range()` of more than 100,000 items itself.

Text rendered inside the template (a `{% set %}` block, a macro's or `caller()`'s output, a filter block) is
kept twice: as the text plain Jinja2 would have (what `|length`, slicing, comparisons and filters see) and as
template text with tokens for its values (what is printed when `{{ it }}` is output again, so a value in it stays
data). A filter's result is template text only when the filter preserves tokens (`indent`, `trim`) or its input
had no values and no text argument; otherwise it is one value. Nothing a value holds is ever read as template
text, and no token is ever seen as a value.
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any, cast

import jinja2
import jinja2.utils
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from kratix.model.settings import RenderSettings

INT_BITS = 10_000  # a number larger than this (about 3,000 digits) has no place in a manifest
_LOOP_GUARD = "_kratix_loop"  # the global every `{% for %}` iterates through (see `_LoopGuard`)
_ORIGINAL = "kratix:"  # the sandbox's own filters, under names a template cannot spell
_CHECK_CLOCK_EVERY = 256  # steps between looks at the clock
# What a step of each kind weighs, in loop iterations (each about half a microsecond): a budget in steps then
# bounds the time a template can take, whatever it spends it on.
_OUTPUT_STEPS = 3  # a `{{ }}`
_FILTER_STEPS = 5
_CALL_STEPS = 10  # a function or method; a macro's own work is counted as it runs


class TemplateBudgetError(Exception):
    """A template went past its budget for one request."""


class Budget:
    """What one request's template step may still spend; mutable, one per step and request."""

    __slots__ = ("_deadline", "_seconds", "next_look", "output", "output_limit", "steps", "step_limit")

    def __init__(self, *, steps: int, seconds: float, output: int) -> None:
        self.steps = self.step_limit = steps
        self.output = self.output_limit = output
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds
        self.next_look = steps - _CHECK_CLOCK_EVERY  # hot paths compare `steps` with this alone

    @classmethod
    def for_request(cls, settings: RenderSettings) -> Budget:
        return cls(
            steps=settings.template_steps, seconds=settings.template_seconds, output=settings.template_output_chars
        )

    def tick(self, weight: int = 1) -> None:
        """One step of work, or `weight` for one that costs as much as that many loop iterations."""
        self.steps -= weight
        if self.steps <= self.next_look:
            self.look()

    def look(self) -> None:
        """Every so many steps: out of steps, or out of time?"""
        if self.steps < 0:
            raise TemplateBudgetError(
                f"template budget exceeded: more than {self.step_limit:,} steps (loop "
                "iterations, calls, attribute and item reads, filters) for one request"
            )
        if time.monotonic() > self._deadline:
            raise TemplateBudgetError(f"template budget exceeded: more than {self._seconds:g} s for one request")
        self.next_look = max(self.steps - _CHECK_CLOCK_EVERY, -1)

    def need(self, size: int) -> None:
        """Refuse to make a value of `size` characters or items."""
        if size > self.output_limit:
            raise TemplateBudgetError(
                f"template budget exceeded: a value of {size:,} characters or items, over "
                f"the limit of {self.output_limit:,}"
            )

    def check(self, value: Any) -> None:
        """Refuse a value that is already too large (made by an operation no check foresaw)."""
        if isinstance(value, _SIZED):
            self.need(len(value))
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > INT_BITS:
            raise TemplateBudgetError(f"template budget exceeded: a number of more than {INT_BITS:,} bits")

    def over_output(self) -> TemplateBudgetError:
        return TemplateBudgetError(
            f"template budget exceeded: the output is over {self.output_limit:,} characters for one request"
        )


class Tokens:
    """The values one render interpolated, addressed by opaque plain-scalar tokens."""

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self.values: list[Any] = []
        self.pattern = re.compile(f"kx{nonce}n([0-9]+)k")

    def token_for(self, value: Any) -> str:
        self.values.append(value)
        return f"kx{self.nonce}n{len(self.values) - 1}k"

    def expand_text(self, text: str) -> str:
        """A scalar holding tokens among other text: the values joined in as text."""
        return self.pattern.sub(lambda m: as_text(self.values[int(m.group(1))]), text)

    def value_of(self, token: str) -> Any:
        match = self.pattern.fullmatch(token)
        return self.values[int(match.group(1))] if match is not None else None


def as_text(value: Any) -> str:
    """A value joined into text: as plain Jinja2 prints a scalar; lists and mappings as JSON."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list | dict | tuple):
        return json.dumps(plain(value), separators=(",", ":"), sort_keys=False)
    return str(value)


def plain(value: Any) -> Any:
    """Jinja hands out Markup, tuples and its own objects: turn them into what YAML can represent."""
    if isinstance(value, str):
        return str.__str__(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, int | bool) else k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


class _Piece(str):
    """One interpolated value in rendered text: reads as the value's text, prints as its token."""

    _token: str

    def __str__(self) -> str:  # `str()` in compiled templates must keep the piece, not copy it to a plain str
        return self


class _Rendered(str):
    """Text rendered inside a template: reads as plain Jinja2's text, prints as template text with tokens."""

    _tokenized: str
    _has_values: bool

    def __str__(self) -> str:
        return self


def _piece(text: str, token: str) -> _Piece:
    piece = _Piece(text)
    piece._token = token
    return piece


def _rendered(text: str, tokenized: str, has_values: bool) -> _Rendered:
    rendered = _Rendered(text)
    rendered._tokenized = tokenized
    rendered._has_values = has_values
    return rendered


_TEXTS = (_Piece, _Rendered)
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)  # tuples, not unions: these run on every step
_CONTAINERS = (list, dict, set)


class _Render:
    __slots__ = ("budget", "tokens")

    def __init__(self, tokens: Tokens, budget: Budget) -> None:
        self.tokens = tokens
        self.budget = budget


class _Active(threading.local):
    render: _Render | None = None  # the render under way in this thread


@jinja2.pass_context
def _finalize(context: jinja2.runtime.Context, value: Any) -> str:
    if isinstance(value, _TEXTS):
        return value  # printed again: its tokens stay tokens
    if isinstance(value, jinja2.Undefined):
        return str(value)  # StrictUndefined raises here, inside the render, where the template line is known
    render: _Render = context.environment._active.render  # type: ignore[attr-defined]
    budget = render.budget
    budget.steps -= _OUTPUT_STEPS
    if budget.steps <= budget.next_look:
        budget.look()
    if type(value) is str:
        piece = _Piece(value)
    else:
        budget.check(value)
        piece = _Piece(as_text(value))
    piece._token = render.tokens.token_for(value)
    return piece


class _LoopGuard(NodeTransformer):
    """`{% for x in items %}` iterates `_kratix_loop(items)`, which counts each iteration against the budget:
    nested loops with empty bodies call nothing else that could count."""

    def __init__(self, environment: jinja2.Environment) -> None:
        self.environment = environment

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        guarded = nodes.Call(
            nodes.Name(_LOOP_GUARD, "load", lineno=node.lineno), [node.iter], [], None, None, lineno=node.lineno
        )
        guarded.set_environment(self.environment)
        node.iter = guarded
        return node


class _Counted:
    __slots__ = ("_budget", "_items")

    def __init__(self, items: Iterable[Any], budget: Budget) -> None:
        self._items = items
        self._budget = budget

    def __iter__(self) -> Iterator[Any]:
        budget = self._budget
        for item in self._items:
            budget.steps -= 1
            if budget.steps <= budget.next_look:
                budget.look()
            yield item

    def __len__(self) -> int:
        return len(self._items)  # type: ignore[arg-type]  # TypeError for an iterator: Jinja counts it itself


@jinja2.pass_environment
def _loop(environment: TemplateEnvironment, items: Iterable[Any]) -> Iterable[Any]:
    render = environment.active()
    return items if render is None else _Counted(items, render.budget)


class TemplateEnvironment(SandboxedEnvironment):
    """The sandbox with the budget's hooks: calls, attribute and item reads, `*`, `**`, `%` and `+`, filters and
    loops count steps and refuse values over the budget; `{{ }}` makes tokens; captured text keeps them."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *, loader: jinja2.BaseLoader) -> None:
        super().__init__(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            finalize=_finalize,
            autoescape=False,
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=-1,
        )
        self._active = _Active()  # container pipelines render templates from several threads
        self.concat = self._concat  # type: ignore[method-assign]  # what templates use to join captured text
        self.globals[_LOOP_GUARD] = _loop
        self.globals["lipsum"] = _guarded(jinja2.utils.generate_lorem_ipsum, _check_lipsum)
        for name in list(self.filters):
            self.filters[_ORIGINAL + name] = self.filters[name]
            self.filters[name] = _guarded_filter(name)

    def join_path(self, template: str, parent: str) -> str:
        """`{% include "./_labels.j2" %}` resolves next to the including template; other names from the root."""
        if template.startswith(("./", "../")):
            return str(PurePosixPath(parent).parent.joinpath(template)).replace("/./", "/")
        return template

    def compile(
        self,
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        if isinstance(source, str):
            source = self.parse(source, name, filename)
        guarded = _LoopGuard(self).visit(source)
        return super().compile(guarded, name, filename, raw, defer_init)  # type: ignore[call-overload]

    # -- one render

    def active(self) -> _Render | None:
        return self._active.render

    def render(self, name: str, context: Mapping[str, Any], tokens: Tokens, budget: Budget) -> str:
        """The template's text with tokens in place of values; raises what the template raises."""
        template = self.get_template(name)
        previous = self._active.render
        self._active.render = _Render(tokens, budget)
        try:
            pieces = cast(Generator[Any, None, None], template.generate(dict(context)))
            out: list[str] = []
            append = out.append
            for piece in pieces:
                budget.output -= len(piece) if isinstance(piece, str) else 0  # the text, values included
                if budget.output < 0:
                    pieces.throw(budget.over_output())  # raised in the template: its traceback names the line
                append(piece if type(piece) is str else _tokenized(piece, tokens))
            return "".join(out)
        finally:
            self._active.render = previous

    # -- the hooks

    def _concat(self, pieces: Iterable[Any]) -> _Rendered:
        render = self.active()
        text: list[str] = []
        tokenized: list[str] = []
        has_values = False
        for piece in pieces:
            if type(piece) is str:
                text.append(piece)
                tokenized.append(piece)
                continue
            if not isinstance(piece, _TEXTS):
                if render is None:
                    raise RuntimeError("template text joined outside a render")
                piece = _piece(as_text(piece), render.tokens.token_for(piece))
            text.append(piece)
            tokenized.append(piece._token if isinstance(piece, _Piece) else piece._tokenized)
            has_values = has_values or isinstance(piece, _Piece) or piece._has_values
        joined = "".join(text)
        if render is not None:
            render.budget.check(joined)
        return _rendered(joined, "".join(tokenized), has_values)

    def call(
        __self,
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,  # noqa: N805 - Jinja's signature
        **kwargs: Any,
    ) -> Any:
        render = __self.active()
        if render is None:
            return SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        render.budget.tick(_CALL_STEPS)
        _check_call(__obj, args, kwargs, render.budget)
        result = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        render.budget.check(result)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, _CONTAINERS):  # list.append, dict.update: what it grew to
            render.budget.check(owner)
        if "caller" in kwargs and isinstance(result, str) and not isinstance(result, _TEXTS):
            # `{% call f() %}` prints what f returns as it is: unless it is rendered text, it is a value.
            return _piece(as_text(result), render.tokens.token_for(result))
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._charge_read(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self._charge_read(super().getitem(obj, argument))

    def _charge_read(self, value: Any) -> Any:
        """An attribute or item read is a step; and a namespace attribute doubled with `~` in a loop is seen here."""
        render = self._active.render
        if render is not None:
            budget = render.budget
            budget.steps -= 1
            if budget.steps <= budget.next_look:
                budget.look()
            if isinstance(value, _SIZED) and len(value) > budget.output_limit:
                budget.need(len(value))
        return value

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        render = self.active()
        if render is not None:
            render.budget.tick()
            _check_binop(operator, left, right, render.budget)
        result = super().call_binop(context, operator, left, right)
        if render is not None:
            render.budget.check(result)
        return result


def _tokenized(piece: Any, tokens: Tokens) -> str:
    if type(piece) is str:
        return piece
    if isinstance(piece, _Piece):
        return piece._token
    if isinstance(piece, _Rendered):
        return piece._tokenized
    return tokens.token_for(piece)  # nothing else should reach the output; if it does, it is a value


# --- filters ---------------------------------------------------------------------------------------------

_STRUCTURAL = frozenset({"indent", "trim"})  # filters that keep tokens whole: applied to both texts
_IDENTITY = frozenset({"string", "safe"})


def _guarded_filter(name: str) -> Callable[..., Any]:
    @jinja2.pass_context
    def guarded(context: jinja2.runtime.Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        environment: TemplateEnvironment = context.environment  # type: ignore[assignment]
        render = environment.active()
        if render is not None:
            render.budget.tick(_FILTER_STEPS)
            check = _FILTER_CHECKS.get(name)
            if check is not None:
                check(value, args, kwargs, render.budget)
        result = environment.call_filter(_ORIGINAL + name, value, args, kwargs, context=context)
        if render is None:
            return result
        render.budget.check(result)
        if not isinstance(value, _Rendered):
            return result
        if name in _IDENTITY:
            return value
        text_arguments = any(isinstance(a, str) for a in (*args, *kwargs.values()))
        if name in _STRUCTURAL and isinstance(result, str) and _keeps_tokens(name, args, kwargs, value):
            tokenized = environment.call_filter(_ORIGINAL + name, value._tokenized, args, kwargs, context=context)
            return _rendered(result, tokenized, value._has_values)
        if isinstance(result, str) and not value._has_values and not text_arguments:
            return _rendered(result, result, False)  # from template text alone: still template text
        if isinstance(result, str):
            return _piece(result, render.tokens.token_for(str.__str__(result)))  # a value, printed as one
        return result

    guarded.__name__ = f"guarded_{name}"
    return guarded


def _keeps_tokens(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], value: _Rendered) -> bool:
    if name == "trim":  # trim(chars) could cut into a token; plain trim, into a value that starts or ends in spaces
        return not args and not kwargs and _edge_spaces(str.__str__(value)) == _edge_spaces(value._tokenized)
    width = args[0] if args else kwargs.get("width", 4)  # indent: a width of spaces only
    return (isinstance(width, int) and not isinstance(width, bool)) or (isinstance(width, str) and not width.strip())


def _edge_spaces(text: str) -> tuple[int, int]:
    """How much whitespace `trim` takes off each end: the same on both texts only when it is all template text."""
    return len(text) - len(text.lstrip()), len(text) - len(text.rstrip())


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text_size(value: Any) -> int:
    return len(value) if isinstance(value, str) else 20


def _check_center(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    budget.need(_int(_arg(args, kwargs, 0, "width", 80)))


def _check_indent(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    width = _arg(args, kwargs, 0, "width", 4)
    per_line = len(width) if isinstance(width, str) else _int(width)
    text = value if isinstance(value, str) else ""
    budget.need(len(text) + (text.count("\n") + 1) * per_line)


def _check_wordwrap(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    wrap = _arg(args, kwargs, 2, "wrapstring", None)
    text = value if isinstance(value, str) else ""
    budget.need(len(text) * (1 + (len(wrap) if isinstance(wrap, str) else 1)))


def _check_batch(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    if _arg(args, kwargs, 1, "fill_with", None) is not None:
        budget.need(_int(_arg(args, kwargs, 0, "linecount", 0)))


def _check_slice(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    budget.need(_int(_arg(args, kwargs, 0, "slices", 0)))


def _check_format(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    if isinstance(value, str):
        _check_percent(value, kwargs or args, budget)


def _check_replace(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    old, new = _arg(args, kwargs, 0, "old", None), _arg(args, kwargs, 1, "new", None)
    if isinstance(value, str) and isinstance(old, str) and isinstance(new, str):
        count = _arg(args, kwargs, 2, "count", None)
        _check_str_replace(value, old, new, count if isinstance(count, int) else -1, budget)


def _check_join(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    separator = _arg(args, kwargs, 0, "d", "")
    if isinstance(value, list | tuple) and isinstance(separator, str):
        budget.need(sum(_text_size(item) for item in value) + len(separator) * max(len(value) - 1, 0))


_FILTER_CHECKS: dict[str, Callable[[Any, tuple[Any, ...], Mapping[str, Any], Budget], None]] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "batch": _check_batch,
    "slice": _check_slice,
    "format": _check_format,
    "replace": _check_replace,
    "join": _check_join,
}


# --- operators, methods, globals -------------------------------------------------------------------------

_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")


def _check_percent(template: str, arguments: Any, budget: Budget) -> None:
    """`"%5000000000s" % x`: refuse a field width or precision over the budget before Python makes it."""
    for match in _PERCENT_FIELD.finditer(template):
        for group in match.groups():
            if group and group != "*":
                budget.need(int(group))
    values = (
        arguments.values()
        if isinstance(arguments, Mapping)
        else (arguments if isinstance(arguments, tuple) else (arguments,))
    )
    for value in values:
        budget.need(_int(value))  # `*` widths come from the arguments


def _check_str_format(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # format() itself will say what is wrong
    for _, _, spec, _ in fields:
        for number in _NUMBER.findall(spec or ""):
            budget.need(int(number))
    for value in (*args, *kwargs.values()):
        budget.need(_int(value))  # nested `{:{width}}` fields come from the arguments


def _check_str_replace(text: str, old: str, new: str, count: int, budget: Budget) -> None:
    times = text.count(old) if old else len(text) + 1
    if count >= 0:
        times = min(times, count)
    budget.need(len(text) + times * max(len(new) - len(old), 0))


def _check_width(owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    budget.need(_int(_arg(args, kwargs, 0, "width", 0)))


def _check_expandtabs(owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    budget.need(len(owner) + owner.count("\t") * _int(_arg(args, kwargs, 0, "tabsize", 8)))


def _check_method_replace(owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _check_str_replace(owner, args[0], args[1], _int(args[2]) if len(args) > 2 else -1, budget)


def _check_method_join(owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    if args and isinstance(args[0], list | tuple):
        budget.need(sum(_text_size(item) for item in args[0]) + len(owner) * max(len(args[0]) - 1, 0))


def _check_method_format(owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    _check_str_format(owner, args, kwargs, budget)


def _check_method_format_map(owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    _check_str_format(owner, (), args[0] if args and isinstance(args[0], Mapping) else {}, budget)


def _check_translate(owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    if args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        budget.need(len(owner) * max(longest, 1))


# Methods of strings that make large strings from small arguments, by name; each check gets the string itself.
_STR_METHOD_CHECKS: dict[str, Callable[[str, tuple[Any, ...], Mapping[str, Any], Budget], None]] = {
    "ljust": _check_width,
    "rjust": _check_width,
    "center": _check_width,
    "zfill": _check_width,
    "expandtabs": _check_expandtabs,
    "replace": _check_method_replace,
    "join": _check_method_join,
    "format": _check_method_format,
    "format_map": _check_method_format_map,
    "translate": _check_translate,
}


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    """Methods of strings that make large strings from small arguments: refused before they run."""
    method = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return
    check = _STR_METHOD_CHECKS.get(getattr(method, "__name__", ""))
    if check is not None:
        check(owner, args, kwargs, budget)


def _check_binop(operator: str, left: Any, right: Any, budget: Budget) -> None:
    sequences = str | bytes | list | tuple
    if operator == "*":
        if isinstance(left, sequences) and isinstance(right, int):
            budget.need(len(left) * max(right, 0))
        elif isinstance(right, sequences) and isinstance(left, int):
            budget.need(len(right) * max(left, 0))
        elif isinstance(left, int) and isinstance(right, int):
            _check_bits(left.bit_length() + right.bit_length())
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        _check_bits(left.bit_length() * right)
    elif operator == "%" and isinstance(left, str):
        _check_percent(left, right, budget)
    elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        budget.need(len(left) + len(right))


def _check_bits(bits: int) -> None:
    if bits > INT_BITS:
        raise TemplateBudgetError(f"template budget exceeded: a number of more than {INT_BITS:,} bits")


def _check_lipsum(args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget) -> None:
    budget.need(_int(_arg(args, kwargs, 0, "n", 5)) * _int(_arg(args, kwargs, 3, "max", 100)))


def _guarded(
    function: Callable[..., Any], check: Callable[[tuple[Any, ...], Mapping[str, Any], Budget], None]
) -> Callable[..., Any]:
    @jinja2.pass_environment
    def guarded(environment: TemplateEnvironment, *args: Any, **kwargs: Any) -> Any:
        render = environment.active()
        if render is not None:
            check(args, kwargs, render.budget)
        return function(*args, **kwargs)

    return guarded
