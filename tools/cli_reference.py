"""Write docs/cli.md, the CLI reference, from the click commands of `kratix.cli`.

    python tools/cli_reference.py            # (re)write docs/cli.md
    python tools/cli_reference.py --check    # exit 1 when docs/cli.md is not what the commands say

The page is built from each parameter's own attributes (names, metavar, help, default, environment variable),
not from click's help formatter, so it reads the same whatever the terminal width or the click release
(tests/test_docs.py checks it is current; it reads the same from click 8.1 to 8.5).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "cli.md"

_PREFACE = """\
# CLI reference

This page is generated from the commands themselves by `python tools/cli_reference.py`; a test fails when it
is out of date. `kratix COMMAND --help` prints the same.

`PATH` is the platform repo (the current directory by default); `--ref` reads it from a Git commit without a
checkout. `compile`, `validate` and `plan` take `--unsandboxed` and `--no-step-network` (see the
[sandbox](authoring.md#the-sandbox-what-a-step-sees)) and `--kubernetes-version 1.N`, the release output is
checked against. `--format json` gives machine output (only JSON on stdout); with `GITHUB_ACTIONS=true` errors
are also printed as GitHub annotations. `--debug` (before the command) shows the traceback of an internal error.
"""


def _escape(text: str) -> str:
    """Markdown-safe text: HTML and table characters escaped outside `code spans`, which stay as written."""
    parts = re.split(r"(`[^`]*`)", text)
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*", r"\*")
    return "".join(parts).replace("|", r"\|")


def _help_text(command: click.Command) -> str:
    """The command's help as Markdown paragraphs (click's `\\b` no-rewrap markers dropped)."""
    text = inspect.cleandoc(command.help or "")
    paragraphs = [
        " ".join(line.strip() for line in block.splitlines() if line.strip() != "\b")
        for block in re.split(r"\n\s*\n", text)
        if block.strip()
    ]
    return "\n\n".join(_escape(p) for p in paragraphs)


def _metavar(param: click.Parameter, ctx: click.Context) -> str:
    try:
        return param.make_metavar(ctx)  # type: ignore[call-arg]  # click >= 8.2 takes the context
    except TypeError:
        return param.make_metavar()  # type: ignore[call-arg]  # click 8.1


def _option_row(option: click.Option, ctx: click.Context) -> str:
    # Short forms first: click keeps the help option's names in a set, whose order changes between runs.
    names = ", ".join(sorted(option.opts, key=lambda name: (name.startswith("--"), name)))
    if option.secondary_opts:
        names += " / " + ", ".join(option.secondary_opts)
    if not option.is_flag and not option.count:
        names += " " + _metavar(option, ctx)
    notes = []
    show_default = option.show_default if option.show_default is not None else ctx.show_default
    if show_default and option.default is not None and not (option.is_flag and not option.default):
        default = option.default() if callable(option.default) else option.default
        notes.append(f"default: `{default}`")
    if option.envvar:
        envvars = [option.envvar] if isinstance(option.envvar, str) else list(option.envvar)
        notes.append("environment: " + ", ".join(f"`{name}`" for name in envvars))
    if option.required:
        notes.append("required")
    if option.multiple:
        notes.append("may be given more than once")
    description = _escape(" ".join((option.help or "").split()))
    if notes:
        joined = "; ".join(notes)
        description = f"{description} ({joined})" if description else joined[0].upper() + joined[1:]
    return f"| `{names}` | {description} |"


def _command_section(name: str, command: click.Command, parent: click.Context) -> str:
    ctx = click.Context(command, info_name=name, parent=parent)
    usage = " ".join(["kratix", name, *command.collect_usage_pieces(ctx)])
    lines = [f"## `kratix {name}`", "", _help_text(command), "", "```", usage, "```", ""]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        lines.append(
            "Arguments: "
            + ", ".join(f"`{_metavar(a, ctx)}`" + ("" if a.required else " (optional)") for a in arguments)
            + "."
        )
        lines.append("")
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    options += [command.get_help_option(ctx)] if command.get_help_option(ctx) else []
    lines += ["| option | what it does |", "|---|---|", *(_option_row(o, ctx) for o in options), ""]
    return "\n".join(lines)


def render(group: click.Group) -> str:
    """The whole page for `group`: the preface, a table of the commands, then one section per command."""
    root = click.Context(group, info_name="kratix", **group.context_settings)
    names = group.list_commands(root)
    commands = {name: group.get_command(root, name) for name in names}
    table = ["| command | what it does |", "|---|---|"]
    for name, command in commands.items():
        assert command is not None
        summary = _escape(command.get_short_help_str(limit=10_000))
        table.append(f"| [`kratix {name}`](#kratix-{name}) | {summary} |")
    global_options = [_option_row(o, root) for o in group.params if isinstance(o, click.Option)]
    sections = [_command_section(name, command, root) for name, command in commands.items() if command]
    from kratix.cli import EXIT_BUG, EXIT_INVALID, EXIT_OK, EXIT_USAGE

    exits = (
        f"Exit codes: {EXIT_OK} success; {EXIT_INVALID} invalid input or a failed compile or publish;\n"
        f"{EXIT_USAGE} a usage error; {EXIT_BUG} a bug in kratix (run the same command with `--debug` and "
        "report the traceback)."
    )
    parts = [
        _PREFACE,
        exits,
        "",
        "## Commands",
        "",
        *table,
        "",
        "Options of `kratix` itself, given before the command:",
        "",
        "| option | what it does |",
        "|---|---|",
        *global_options,
        "",
        *sections,
    ]
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is stale; write nothing")
    args = parser.parse_args(argv)
    from kratix.cli import main as kratix_main

    text = render(kratix_main)
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run `python tools/cli_reference.py`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
