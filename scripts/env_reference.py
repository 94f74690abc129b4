"""Writes the README's configuration tables from the CLI itself, so the docs cannot drift.

Usage: python scripts/env_reference.py [--write README.md]
"""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path

import click

from harness.cli.main import cli
from workers.candidate.config import HYPERPARAMETERS


def option_rows() -> list[tuple[str, str, str, str]]:
    seen: dict[str, tuple[str, str, str, str]] = {}
    for name, command in _commands():
        for param in command.params:
            if not isinstance(param, click.Option | click.Argument) or not param.envvar:
                continue
            envvar = param.envvar if isinstance(param.envvar, str) else param.envvar[0]
            flag = param.opts[0] if isinstance(param, click.Option) else (param.name or "").upper()
            default = _shown_default(param.default)
            help_text = " ".join((getattr(param, "help", "") or "").split()).replace("|", "\\|")
            if isinstance(param, click.Argument):  # arguments carry no help: the command's first line says it
                help_text = (command.get_short_help_str(limit=200) or "").replace("|", "\\|")
            if envvar in seen:
                first = seen[envvar]
                seen[envvar] = (envvar, first[1] + f", {name}", first[2], first[3])
            else:
                seen[envvar] = (envvar, f"`{flag}` of {name}", default, help_text)
    return sorted(seen.values())


def _commands() -> list[tuple[str, click.Command]]:
    """Every command, a group's subcommands as `group sub` (e.g. `deadletter list`)."""
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(cli.commands.items()):
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", subcommand) for sub, subcommand in sorted(command.commands.items())]
    return found


def _shown_default(default: object) -> str:
    # click marks "no default" with a sentinel enum member (UNSET); it is no value to document
    unset = isinstance(default, enum.Enum) and not isinstance(default, str)
    if unset or default in (None, (), False) or callable(default):
        return ""
    return str(default)


def options_table() -> str:
    lines = ["| variable | option, commands | default | meaning |", "|---|---|---|---|"]
    for envvar, where, default, help_text in option_rows():
        lines.append(f"| `{envvar}` | {where} | {f'`{default}`' if default else ''} | {help_text} |")
    return "\n".join(lines)


def hyperparameters_table() -> str:
    lines = ["| variable | default | valid values | meaning |", "|---|---|---|---|"]
    for parameter in HYPERPARAMETERS:
        lines.append(f"| `{parameter.env}` | `{parameter.default}` | {parameter.rule} | {parameter.description} |")
    return "\n".join(lines)


def fill(text: str, marker: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"marker {marker} not found")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        text = fill(path.read_text(), "env-reference", options_table())
        path.write_text(fill(text, "hyperparameters", hyperparameters_table()))
    else:
        print(options_table())
        print()
        print(hyperparameters_table())


if __name__ == "__main__":
    main()
