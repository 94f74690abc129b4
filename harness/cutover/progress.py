"""How cutover steps tell the operator what happens as it happens: one line per step, and a ticker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

Say = Callable[[str], None]  # prints one line at once (the CLI passes click.echo, which flushes)
TICK_S = 1.0  # how often a long wait reports its countdown


def silent(line: str) -> None:
    """The default `say`: library callers and tests that do not look at the lines."""


def when(ms: float | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


class Ticker:
    """Calls `tick` every TICK_S from a thread while a blocking step runs (a backend's stop).

    A tick that fails is skipped: the countdown is information, the step's own outcome is what counts.
    """

    def __init__(self, tick: Callable[[], None], every_s: float = TICK_S) -> None:
        self._tick = tick
        self._every_s = every_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cutover-ticker", daemon=True)

    def _run(self) -> None:
        while not self._stopping.wait(self._every_s):
            try:
                self._tick()
            except Exception:  # a lost countdown line must not stop the step
                continue

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stopping.set()
        self._thread.join(timeout=self._every_s * 2)
