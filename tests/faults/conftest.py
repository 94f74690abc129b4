"""Fault scenarios: each prints one FAULT figure line, shown in the normal pytest output."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.stack import FaultStack, fault_stack


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[FaultStack]:
    with fault_stack(tmp_path) as world:
        yield world


@pytest.fixture()
def figure(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    def show(line: str) -> None:
        with capsys.disabled():
            print("\n" + line, flush=True)

    return show
