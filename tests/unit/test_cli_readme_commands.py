"""README's *Commands* table against the CLI: every subcommand is listed, with the options its
`--help` has and no other (a new user copies them from there)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from switchboard.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> dict[str, set[str]]:
    """Each subcommand of the table with the options its rows write (`worker` has four rows)."""
    section = README.read_text().split("\n## Commands\n", 1)[1].split("\n\n`tail`", 1)[0]
    options: dict[str, set[str]] = {}
    for usage in re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE):
        command = usage.split()[0]
        options.setdefault(command, set()).update(re.findall(r"--[a-z-]+", usage))
    return options


def _subcommands() -> dict[str, set[str]]:
    """Each subcommand of the parser with its options, -h/--help aside."""
    parser = build_parser()
    sub = next(action for action in parser._actions
               if isinstance(action, argparse._SubParsersAction))
    return {name: {option for action in command._actions for option in action.option_strings
                   if option.startswith("--") and option != "--help"}
            for name, command in sub.choices.items()}


def test_the_commands_table_lists_every_subcommand_with_its_options() -> None:
    assert _table() == _subcommands()
