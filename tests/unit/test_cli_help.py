"""Every command's --help renders, and names only options that exist: help text cannot go stale silently."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness.cli.main import cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


ALL = list(commands(cli))
KNOWN = {opt for _, command in ALL for param in command.params for opt in (*param.opts, *param.secondary_opts)}
KNOWN |= {"--help"}


@pytest.mark.parametrize("path", [path for path, _ in ALL], ids=" ".join)
def test_help_renders_and_names_only_options_that_exist(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    stale = sorted(set(OPTION.findall(result.output)) - KNOWN)
    assert stale == [], f"harness {' '.join(path)} --help names options no command has: {stale}"
    assert "Sentinel" not in result.output and "UNSET" not in result.output


def test_one_environment_variable_per_concept() -> None:
    by_variable: dict[str, set[str]] = {}
    for _, command in ALL:
        for param in command.params:
            if isinstance(param, click.Option) and param.envvar:
                by_variable.setdefault(str(param.envvar), set()).add(param.name or "")
    shared_names = {variable: names for variable, names in by_variable.items() if len(names) > 1}
    assert shared_names == {}, "one variable must mean one thing (one option name) everywhere"
    policy_variables = {str(p.envvar) for _, c in ALL for p in c.params if isinstance(p, click.Option)
                        and "--policy" in p.opts}
    assert policy_variables == {"HARNESS_POLICY"}


def test_the_configuration_table_has_a_description_and_no_repr_on_every_row() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `HARNESS_")]
    assert rows
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[-1], f"no description: {row}"
        assert "Sentinel" not in row and "<" not in cells[2], row
