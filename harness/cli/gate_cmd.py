"""`harness gate`, `harness threshold`, `harness backtest` and `harness record`."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
