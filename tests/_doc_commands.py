"""Commands shown in the documentation, parsed out of Markdown, and checks of ``s2cac`` ones against the CLI.

Used by tests/test_docs.py. A command is a line of a fenced ``bash``/``sh`` block or a plain fenced block
(a synopsis) that starts with ``s2cac``, ``snakemake`` or ``make`` (``\\`` or an indented next line continues
it, ``#`` starts a comment), or an inline code span that starts with one of them. Synopsis notation is
understood: ``[...]`` is optional (checked as if given), ``a|b`` alternatives (each checked), ``( A | B )``
alternative groups, and upper-case placeholders (``DIR``, ``CF``, ``Z Y X``) stand for values of the option
they follow.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

PROGRAMS = ("s2cac", "snakemake", "make")
_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```", re.M | re.S)
_INLINE = re.compile(r"(?<!`)`((?:" + "|".join(PROGRAMS) + r") [^`]+)`(?!`)")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class DocCommand:
    """A command as written in a document.

    Attributes:
        where: ``file:line`` of the command.
        text: the command as written (continuations joined, comment removed).
        fenced: from a fenced block (a command to run) rather than an inline mention in prose.
    """

    where: str
    text: str
    fenced: bool

    @property
    def program(self) -> str:
        return self.text.split()[0]


def doc_commands(path: Path, root: Path) -> list[DocCommand]:
    """Every command of ``path`` (see the module docstring), in order of appearance."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(root).as_posix()
    found: list[tuple[int, DocCommand]] = []
    for block in _FENCE.finditer(text):
        if block.group(1) not in ("", "bash", "sh", "shell", "console"):
            continue
        first = text.count("\n", 0, block.start(2)) + 1
        for offset, line in _logical_lines(block.group(2)):
            command = _strip_comment(line)
            if command.split(" ", 1)[0] in PROGRAMS:
                found.append((block.start(2), DocCommand(f"{name}:{first + offset}", command, True)))
    for span in _INLINE.finditer(text):
        line = text.count("\n", 0, span.start()) + 1
        command = " ".join(span.group(1).replace("\\|", "|").split())
        found.append((span.start(), DocCommand(f"{name}:{line}", command, False)))
    return [c for _, c in sorted(found, key=lambda item: item[0])]


def _logical_lines(body: str) -> list[tuple[int, str]]:
    """(line offset, text) of each line of ``body`` with ``\\`` continuations and indented lines joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for i, line in enumerate(body.splitlines()):
        if not pending and out and line[:1].isspace() and line.split(" ", 1)[0] not in PROGRAMS:
            out[-1] = (out[-1][0], f"{out[-1][1]} {line.strip()}")  # an indented synopsis continuation
            continue
        if not pending:
            start = i
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, (pending + line).strip()))
        pending = ""
    if pending:
        out.append((start, pending.strip()))
    return out


def _strip_comment(line: str) -> str:
    return " ".join(shlex.split(line, comments=True))


def variants(text: str) -> list[list[str]]:
    """The argument lists a synopsis stands for: optional parts included, each alternative once."""
    tokens = shlex.split(re.sub(r"[\[\]]", " ", text).replace("(", " ( ").replace(")", " ) "))
    groups = _expand_groups(tokens)
    out: list[list[str]] = []
    for group in groups:
        alternatives = [tok.split("|") if "|" in tok else [tok] for tok in group]
        for k in range(max(len(a) for a in alternatives)):
            argv = [a[min(k, len(a) - 1)] for a in alternatives]
            if argv not in out:
                out.append(argv)
    return out


def _expand_groups(tokens: list[str]) -> list[list[str]]:
    if "(" not in tokens:
        return [tokens]
    start = tokens.index("(")
    depth, end = 0, start
    for end in range(start, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[end], 0)
        if depth == 0:
            break
    inner, choices, current, level = tokens[start + 1 : end], [], [], 0
    for tok in inner:
        level += {"(": 1, ")": -1}.get(tok, 0)
        if tok == "|" and level == 0:
            choices.append(current)
            current = []
        else:
            current.append(tok)
    choices.append(current)
    out = []
    for choice in choices:
        out += _expand_groups(tokens[:start] + choice + tokens[end + 1 :])
    return out


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _accepts(action: argparse.Action, value: str) -> bool:
    try:
        converted = action.type(value) if callable(action.type) else value
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        return False
    return action.choices is None or converted in action.choices


def _n_values(action: argparse.Action, rest: list[str]) -> int:
    if action.nargs == 0:
        return 0
    if action.nargs is None:
        return 1
    if isinstance(action.nargs, int):
        return action.nargs
    n = 0
    while n < len(rest) and not rest[n].startswith("-"):
        n += 1
    return min(n, 1) if action.nargs == "?" else n


def check_s2cac(argv: list[str], parser_of, commands: dict, complete: bool = True) -> list[str]:
    """What is wrong with ``s2cac ARGV`` (an empty list when the CLI accepts it).

    Args:
        argv: arguments after ``s2cac`` (one variant, see :func:`variants`).
        parser_of: subcommand name -> its argparse parser (None -> the top-level ``s2cac`` parser).
        commands: the subcommands (``s2cac.cli.COMMANDS``).
        complete: ``argv`` is a whole command line, which the parser must accept as it stands; otherwise (a
            mention in prose such as `s2cac train` or `s2cac predict --output out/`) it may leave out required
            arguments, and what it does give must be accepted.
    """
    if argv and argv[0].startswith("-"):  # s2cac --help, s2cac --version
        top = parser_of(None)._option_string_actions
        return [f"s2cac has no option {a}" for a in argv if a.startswith("-") and a not in top]
    if not argv or argv[0] not in commands:
        return [f"no subcommand {argv[0] if argv else ''!r} (s2cac has: {', '.join(commands)})"]
    parser = parser_of(argv[0])
    args, problems = list(argv[1:]), []
    options, sub = parser._option_string_actions, _subparsers(parser)
    i = 0
    while i < len(args):
        tok = args[i]
        if tok.startswith("-"):
            action = options.get(tok.split("=", 1)[0])
            if action is None:  # exact names only: argparse would also accept an abbreviation
                problems.append(f"s2cac {argv[0]} has no option {tok.split('=', 1)[0]}")
                i += 1
                continue
            n = 0 if "=" in tok else _n_values(action, args[i + 1 :])
            for j in range(i + 1, i + 1 + n):
                if j < len(args) and _PLACEHOLDER.match(args[j]) and not _accepts(action, args[j]):
                    args[j] = str(next(iter(action.choices))) if action.choices else "1"  # a value of its type
            i += 1 + n
            continue
        if sub is not None and tok in sub.choices:
            options, sub = sub.choices[tok]._option_string_actions, _subparsers(sub.choices[tok])
        elif sub is not None:
            problems.append(f"s2cac {argv[0]} has no {tok!r} (choose from {', '.join(sub.choices)})")
        i += 1
    if problems:
        return problems
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as stop:
        if not stop.code:  # --help
            return []
        message = err.getvalue().strip().splitlines()[-1]
        if complete or "the following arguments are required" not in message:
            return [f"the parser refuses it: {message}"]
    return []
