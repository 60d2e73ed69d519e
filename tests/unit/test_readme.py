"""The README's commands are real: every `cilium-labs ...` line it shows names a command and options that exist.

On old main the README said `cilium-labs verify --name ...`, which exits 2 (the option is `--lab`).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from cilium_labs.cli import cli

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md"]


def _invocations(text: str) -> list[str]:
    """``cilium-labs ...`` as written in code blocks and inline code, up to a comment, pipe or redirect."""
    found = []
    for m in re.finditer(r"(?m)(?:^\$ |`)(cilium-labs [^`#\n|>;]*)", text):
        found.append(m.group(1).strip())
    return found


def _check(argv: list[str]) -> str | None:
    """Why ``argv`` (without the program name) would not parse, or None."""
    group: click.Command = cli
    args = list(argv)
    while isinstance(group, click.Group) and args and not args[0].startswith("-"):
        if args[0].isupper() or args[0][0] in "{<":  # COMMAND, {a,b}, <name>: a placeholder, not a command
            return None
        sub = group.get_command(click.Context(group), args[0])
        if sub is None:
            return f"no command {args[0]!r}"
        group, args = sub, args[1:]
    options = {opt for p in group.params for opt in [*p.opts, *p.secondary_opts]}
    options |= {"-h", "--help"}
    for arg in args:
        if arg.startswith("-") and arg != "--":
            if arg.split("=", 1)[0] not in options:
                return f"no option {arg!r} for `{group.name}`"
        if arg == "--":
            break
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_command_and_option_exists(doc: Path) -> None:
    problems = []
    for line in _invocations(doc.read_text()):
        try:
            words = shlex.split(line.replace("...", ""))[1:]
        except ValueError:
            continue
        words = [w for w in words if "|" not in w]  # `--keep always|on-failure`: placeholders, not a value
        why = _check(words)
        if why:
            problems.append(f"{line}: {why}")
    assert problems == []
