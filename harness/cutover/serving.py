"""Whether a worker can take production: a live lease, its consumer group on the input, a lag under a bound.

A switch to a worker that is not serving would leave production without results, so the cutover and
the rollback show it first, starting the worker through the backend when the backend knows how.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from harness.cutover.progress import TICK_S, Say
from harness.cutover.stoppers import StopperError, WorkerStopper
from harness.transport import presence

DEFAULT_MAX_TARGET_LAG = 10_000  # entries: about ten seconds of a busy input
DEFAULT_START_TIMEOUT_S = 60.0  # how long a started (or resumed) target may take to serve
UNSERVED = "switching to it would leave production unserved"


@dataclass(frozen=True)
class ServingBound:
    max_lag: int = DEFAULT_MAX_TARGET_LAG
    timeout_s: float = DEFAULT_START_TIMEOUT_S


@dataclass(frozen=True)
class Serving:
    worker: str
    stream: str
    holder: str | None  # '<host> <pid>' of the live lease (or how many replicas); None: no live process
    lag: int | None  # None: no consumer group (on some partition)
    max_lag: int
    unheld: tuple[int, ...] = ()  # partitions no live replica holds (with a partitioned input)
    partitions: int = 1

    @property
    def missing(self) -> str | None:
        """What keeps the worker from serving, in words; None when it serves."""
        if self.lag is None:
            where = f"one of the {self.partitions} partitions of {self.stream}" if self.partitions > 1 else self.stream
            return f"{self.worker} has no consumer group on {where} (it never ran there, or was retired)"
        if self.holder is None and self.unheld and len(self.unheld) < self.partitions:
            shown = ", ".join(map(str, self.unheld))
            return f"no live {self.worker} replica holds partition(s) {shown}"
        if self.holder is None:
            return f"{self.worker} holds no lease: no live {self.worker} process runs"
        if self.lag > self.max_lag:
            return (f"{self.worker} is {self.lag:,} entries behind (more than --max-target-lag "
                    f"{self.max_lag:,})")
        return None

    def describe(self) -> str:
        if self.missing is not None:
            return f"{self.worker} is not serving: {self.missing}"
        return f"{self.worker} is serving: lease held by {self.holder}, {self.lag:,} entries behind"


def probe(client: redis.Redis, worker: str, stream: str, max_lag: int, partitions: int = 1) -> Serving:
    """Serving means every partition held by a live process, and the lag (summed over them) under the bound."""
    holders = presence.lease_holders(client, worker, partitions)
    unheld = tuple(index for index in range(partitions) if index not in holders)
    if unheld:
        holder = None
    elif partitions == 1:
        holder = holders[0]
    else:
        holder = f"{len(set(holders.values()))} replica(s) over {partitions} partitions"
    lag = presence.input_lag(client, stream, worker, partitions, limit=max_lag + 1)
    return Serving(worker, stream, holder, lag, max_lag, unheld, partitions)


def bring_up(client: redis.Redis, worker: str, stream: str, stopper: WorkerStopper, bound: ServingBound,
             say: Say) -> str | None:
    """Start the worker if no process holds its lease and the backend can, then wait (bounded) until it
    serves. Returns None once it serves, else the one line that refuses the switch."""
    state = probe(client, worker, stream, bound.max_lag, stopper.partitions)
    if state.lag is None:  # starting it would begin a new group with no state: not a restore
        return f"{state.missing}; {UNSERVED}"
    if state.holder is None:
        if not stopper.can_start(client, worker):
            return f"{state.missing} ({stopper.how_to_start(worker)}); {UNSERVED}"
        try:
            log = stopper.start(client, worker)
        except StopperError as exc:
            return f"{state.missing}, and it could not be started: {exc}; {UNSERVED}"
        say(f"started {worker}" + (f" (log: {log})" if log else ""))
    state = wait_serving(client, worker, stream, bound, say, stopper.partitions)
    if state.missing is None:
        say(state.describe())
        return None
    return (f"{state.missing} after {bound.timeout_s:.0f}s (--start-timeout); {UNSERVED} "
            f"(a running {worker} keeps catching up: run the command again later)")


def wait_serving(client: redis.Redis, worker: str, stream: str, bound: ServingBound, say: Say,
                 partitions: int = 1) -> Serving:
    deadline = time.monotonic() + bound.timeout_s
    next_line = time.monotonic() + TICK_S
    while True:
        state = probe(client, worker, stream, bound.max_lag, partitions)
        if state.missing is None or time.monotonic() >= deadline:
            return state
        if time.monotonic() >= next_line:
            say(f"waiting for {worker} to serve: {state.missing}")
            next_line += TICK_S
        time.sleep(0.1)
