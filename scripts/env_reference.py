"""Prints the README's configuration tables from the CLI itself, so the docs cannot drift."""

from __future__ import annotations

import click

from harness.cli.main import cli


def rows() -> list[tuple[str, str, str, str]]:
    seen: dict[str, tuple[str, str, str, str]] = {}
    for name, command in sorted(cli.commands.items()):
        for param in command.params:
            if not isinstance(param, click.Option | click.Argument) or not param.envvar:
                continue
            envvar = param.envvar if isinstance(param.envvar, str) else param.envvar[0]
            flag = param.opts[0] if isinstance(param, click.Option) else param.name or ""
            default = "" if param.default in (None, (), False) or callable(param.default) else str(param.default)
            help_text = " ".join((getattr(param, "help", "") or "").split())
            if envvar in seen:
                first = seen[envvar]
                seen[envvar] = (envvar, first[1] + f", {name}", first[2], first[3])
            else:
                seen[envvar] = (envvar, f"`{flag}` of {name}", default, help_text)
    return sorted(seen.values())


def main() -> None:
    print("| variable | option / commands | default | meaning |")
    print("|---|---|---|---|")
    for envvar, where, default, help_text in rows():
        print(f"| `{envvar}` | {where} | {f'`{default}`' if default else ''} | {help_text} |")


if __name__ == "__main__":
    main()
