"""Backtest: a control and a candidate (any two workers) in-process on recorded signals, compared as in production.

Each side is the real worker runtime over the in-memory transport (no Redis): the same decode,
dedupe, batch, fallback and dead-letter path as a live worker. Both sides see the same batches in
the same order, with the same entry ids, and keep their state in memory, so agreement and error
figures are deterministic. Latency is each batch's real time in the runtime, without the
queueing of a live run. The report names the control "legacy" (the schema's side names) and says
which workers ran in its `sides`; without a control, the candidate is scored alone on the truth.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from harness.backtest_pairs import PairsWriter
from harness.clustering import Assignment, ClusteringAlgorithm, WorkerContext
from harness.comparator.state import ComparatorState
from harness.contracts import SignalClustered, SignalReceived, clustered_to_dict, decode_clustered, encode_signal
from harness.report.headline import headline
from harness.runtime.loader import load_algorithm
from harness.runtime.worker import DEFAULT_BATCH_SIZE, RuntimeSettings, WorkerRuntime
from harness.transport.memory import InMemoryBroker, InMemoryTransport


class InProcessWorker:
    """A hosted algorithm driven by the worker runtime over its own in-memory broker."""

    def __init__(self, name: str, algorithm: ClusteringAlgorithm, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.name = name
        self.algorithm = algorithm
        self.seconds = 0.0  # total time in the runtime
        self._broker = InMemoryBroker()
        transport = InMemoryTransport(self._broker, name, input_stream=name)
        self._runtime = WorkerRuntime(transport, algorithm,
                                      RuntimeSettings(worker_name=name, batch_size=batch_size, lease_ttl_s=None))
        self._results_read = 0
        self._entries = 0

    @classmethod
    def load(cls, spec: str, env: Mapping[str, str] | None = None, name: str | None = None,
             batch_size: int = DEFAULT_BATCH_SIZE) -> InProcessWorker:
        """`legacy`, `candidate` or MODULE:FACTORY, with fresh in-memory state (no Redis)."""
        name = name or spec
        return cls(name, load_algorithm(spec, WorkerContext(name, None, dict(env or {}))), batch_size)

    def run(self, signals: Sequence[SignalReceived]) -> list[SignalClustered]:
        """Feed `signals` through the runtime; one result per signal, in input order."""
        started = time.perf_counter()
        for signal in signals:
            self._entries += 1
            self._broker.append(self.name, encode_signal(signal), entry_id=f"0-{self._entries}")
        while self._runtime.step():
            pass
        self.seconds += time.perf_counter() - started
        fresh = self._broker.results.get(self.name, [])[self._results_read:]
        self._results_read += len(fresh)
        return [decode_clustered(payload) for _, payload in fresh]

    def assign(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        return [Assignment(r.outcome, r.label, r.is_new_cluster, r.error_type, r.error_message)
                for r in self.run(signals)]

    def warm_up(self, signals: Sequence[SignalReceived]) -> None:
        """Show the model these signals once, under other ids (an id is accepted only once)."""
        self.run([dataclasses.replace(s, signal_id=f"warmup/{s.signal_id}") for s in signals])


NO_CONTROL = "none"  # --control none: the candidate alone, scored on the truth


@dataclass(frozen=True)
class BacktestResult:
    report: dict[str, Any]  # harness.report/1, with `sides` naming the control and the candidate
    signals: int
    seconds: float  # wall time of the whole run, both workers and the comparison
    legacy_seconds: float  # the control's time in the runtime (0 without one)
    candidate_seconds: float

    @property
    def signals_per_s(self) -> float:
        return self.signals / self.seconds if self.seconds > 0 else 0.0


def run_backtest(
    signals: Iterable[SignalReceived],
    *,
    control: str | None = "legacy",
    candidate: str = "candidate",
    control_env: Mapping[str, str] | None = None,
    candidate_env: Mapping[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
    pairs: Path | None = None,
) -> BacktestResult:
    """Run the control (None or "none": no control) and the candidate over `signals` into one report.

    The control is reported as the `legacy` side. `pairs` (.csv or .parquet) receives every signal's
    labels on each side and its true kind. `on_batch(signals_done)` reports progress.
    """
    if batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    alone = control is None or control == NO_CONTROL
    workers = {"candidate": InProcessWorker.load(candidate, candidate_env, "candidate", batch_size)}
    if not alone:
        workers = {"legacy": InProcessWorker.load(str(control), control_env, "legacy", batch_size), **workers}
    state = ComparatorState(sides=("legacy", "candidate"))
    writer = PairsWriter(pairs, list(workers)) if pairs is not None else None
    started = time.perf_counter()
    done = 0
    try:
        for batch in _batches(signals, batch_size):
            results = {name: worker.run(batch) for name, worker in workers.items()}
            for name, side_results in results.items():
                state.ingest(name, [clustered_to_dict(result) for result in side_results],
                             max((r.published_at_ms for r in side_results), default=0.0))
            if alone:  # no control will ever answer: finish each batch now rather than hold it
                state.expire(float("inf"))
            if writer is not None:
                writer.write(batch, results)
            done += len(batch)
            if on_batch is not None:
                on_batch(done)
    finally:
        if writer is not None:
            writer.close()
    state.expire(float("inf"))  # the run is over: whatever is still pending will never come
    seconds = time.perf_counter() - started
    report = state.report(done)
    if alone:
        report["agreement"]["truth"] = state.truth_section(control=False)
    report["sides"] = {"control": None if alone else control, "candidate": candidate}
    report["headline"] = headline(report)  # again: it depends on the sides and truth set just above
    control_seconds = 0.0 if alone else workers["legacy"].seconds
    return BacktestResult(report, done, seconds, control_seconds, workers["candidate"].seconds)


def _batches(signals: Iterable[SignalReceived], size: int) -> Iterator[list[SignalReceived]]:
    iterator = iter(signals)
    while batch := list(islice(iterator, size)):
        yield batch
