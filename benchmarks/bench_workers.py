"""Worker throughput: the same WorkerRuntime drains one pre-filled stream with a null, the candidate and legacy.

A fourth worker, `raw`, is the yardstick for the harness's own cost: a loop written with redis-py alone
(XREADGROUP, msgpack decode, XADD of a result, XACK), no harness code. Each worker runs in its own
process (as in production) and reads through its own consumer group on the same input stream. A worker's
time runs from its first read to the end of its last commit, so the idle wait before it exits is not
counted. The last line printed is a JSON summary.

    python benchmarks/bench_workers.py [--signals 50000] [--samples 1000] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import msgpack
import numpy as np
import redis

from harness.clustering import Assignment, ClusteringAlgorithm, WorkerContext
from harness.contracts import SignalReceived, encode_signal
from harness.embedded_redis import EmbeddedRedis
from harness.producer.synthetic import generate_signals
from harness.runtime.heap import freeze_startup_heap
from harness.runtime.loader import load_algorithm
from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.transport import keys
from harness.transport.base import CommitBatch, CommitOutcome, Delivery, Transport
from harness.transport.streams import StreamTransport

INPUT_STREAM = "bench:signals"
WORKERS = ("raw", "null", "candidate", "legacy")  # the order they drain in
DISTINCT_SIGNALS = 5_000  # generated once, then re-encoded under fresh ids up to --signals
FILL_CHUNK = 1_000  # XADDs per pipeline round trip
IDLE_EXIT_S = 0.3  # how long a worker waits on an empty stream before it exits (not timed)
BLOCK_MS = 100
SEED = 7
CANDIDATE_TARGET_SPS = 15_000.0
CANDIDATE_TARGET_VS_NULL = 0.5


class NullAlgorithm:
    """Transport only: every signal gets the same fixed assignment."""

    model_version = "null-1"
    _fixed = Assignment.clustered("normal")

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        return [self._fixed] * len(signals)


class TimedTransport:
    """Wraps a real transport; notes when the first read starts and when the last commit ends.

    Everything else is delegated as is, so the wrapper follows the transport interface as it grows.
    """

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.first_read_at: float | None = None
        self.last_commit_at: float | None = None

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        if self.first_read_at is None:
            self.first_read_at = time.perf_counter()
        return self._inner.read(count, block_ms)

    def commit(self, batch: CommitBatch) -> CommitOutcome:
        outcome = self._inner.commit(batch)
        self.last_commit_at = time.perf_counter()
        return outcome

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# --- parent: fill, run the workers one after the other, report ---------------------------------------


def fill(client: redis.Redis, count: int, samples: int) -> float:
    """XADD `count` encoded signals with unique ids; returns the seconds it took."""
    started = time.perf_counter()
    distinct = list(generate_signals(min(count, DISTINCT_SIGNALS), SEED, devices=8, samples=samples))
    pipe = client.pipeline(transaction=False)
    for index in range(count):
        signal = dataclasses.replace(distinct[index % len(distinct)], signal_id=f"bench-{index:08d}")
        pipe.xadd(INPUT_STREAM, {keys.PAYLOAD_FIELD: encode_signal(signal)})
        if len(pipe) >= FILL_CHUNK:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - started


def drain_in_child(kind: str, name: str, url: str, batch_size: int, profile_dir: str | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--drain", kind, "--name", name, "--url", url,
               "--batch-size", str(batch_size)]
    if profile_dir:
        command += ["--profile", profile_dir]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {name} failed (exit {done.returncode}):\n{done.stderr.strip()}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=1_000, help="samples per signal")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--workers", default=",".join(WORKERS),
                        help="comma-separated subset of raw,null,candidate,legacy")
    parser.add_argument("--runs", type=int, default=3,
                        help="rounds of raw, null and candidate drains, alternating (fresh consumer groups each); "
                             "the best and the median are reported. Legacy is drained once")
    parser.add_argument("--profile", metavar="DIR", help="write a cProfile .pstats per worker into DIR")
    parser.add_argument("--drain", choices=WORKERS, help=argparse.SUPPRESS)  # internal: the child process
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drain:
        drainer = drain_raw if args.drain == "raw" else drain
        print(json.dumps(drainer(args.drain, args.name or args.drain, args.url, args.batch_size, args.profile)))
        return 0
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    chosen = [name for name in args.workers.split(",") if name]
    figures: dict[str, dict[str, Any]] = {}
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        fill_s = fill(client, args.signals, args.samples)
        print(f"filled {INPUT_STREAM}: {client.xlen(INPUT_STREAM):,} signals x {args.samples:,} samples "
              f"in {fill_s:.1f} s ({client.info('memory')['used_memory_human']} in Redis)", flush=True)
        # Rounds alternate the workers (raw, null, candidate, raw, ...): this machine's speed drifts by up to
        # 1.5x within minutes, and a ratio of two drains taken far apart moves with it.
        for run in range(max(args.runs, 1)):
            for kind in chosen:
                if kind == "legacy" and run > 0:
                    continue
                name = kind if run == 0 else f"{kind}-{run + 1}"  # a fresh group, results stream and state
                child = drain_in_child(kind, name, server.url, args.batch_size, args.profile)
                child["results"] = int(client.xlen(keys.results_stream(name)))
                child["dead_letters"] = int(client.xlen(keys.dead_letter_stream(name)))
                child["sps"] = child["processed"] / child["seconds"] if child["seconds"] > 0 else 0.0
                child["runs"] = [*figures.get(kind, {}).get("runs", []), round(child["sps"])]
                print(f"  {name:<12} {child['sps']:>10,.0f} signals/s  ({child['seconds']:.2f} s)", flush=True)
                if kind not in figures or child["sps"] > figures[kind]["sps"]:
                    figures[kind] = child
                else:
                    figures[kind]["runs"] = child["runs"]
        client.close()

    print()
    print(f"best of the rounds; 'check' = {args.signals:,} results and no dead letters")
    print(f"{'worker':<10} {'signals/s':>10} {'seconds':>8} {'results':>8} {'dead':>5} {'check':>6}  runs (signals/s)  "
          f"outcomes")
    for name, row in figures.items():
        check = "ok" if row["results"] == args.signals and row["dead_letters"] == 0 else "WRONG"
        runs = ", ".join(f"{sps:,}" for sps in row["runs"])
        print(f"{name:<10} {row['sps']:>10,.0f} {row['seconds']:>8.2f} {row['results']:>8,} "
              f"{row['dead_letters']:>5} {check:>6}  {runs:<16}  {row['by_outcome']}")
    summary: dict[str, float | None] = {f"{name}_sps": round(figures[name]["sps"], 1) if name in figures else None
                                        for name in WORKERS}
    medians = {name: statistics.median(row["runs"]) for name, row in figures.items()}
    null_sps, candidate_sps, raw_sps = summary["null_sps"], summary["candidate_sps"], summary["raw_sps"]
    summary["candidate_vs_null"] = round(candidate_sps / null_sps, 3) if null_sps and candidate_sps else None
    summary["null_vs_raw"] = round(null_sps / raw_sps, 3) if null_sps and raw_sps else None
    summary["candidate_vs_null_median"] = _ratio(medians, "candidate", "null")
    summary["null_vs_raw_median"] = _ratio(medians, "null", "raw")
    print(f"medians of the rounds: candidate/null {summary['candidate_vs_null_median']}, "
          f"null/raw {summary['null_vs_raw_median']}")
    if candidate_sps is not None:
        ok = candidate_sps >= CANDIDATE_TARGET_SPS and (summary["candidate_vs_null"] or 0) >= CANDIDATE_TARGET_VS_NULL
        print(f"\ncandidate target (>= {CANDIDATE_TARGET_SPS:,.0f}/s and >= {CANDIDATE_TARGET_VS_NULL} x null): "
              f"{'met' if ok else 'MISSED'}")
    print(json.dumps(summary))
    return 0


def _ratio(medians: dict[str, float], top: str, bottom: str) -> float | None:
    return round(medians[top] / medians[bottom], 3) if medians.get(top) and medians.get(bottom) else None


# --- child: host one worker on the pre-filled stream ---------------------------------------------------


def build_algorithm(kind: str, name: str, client: redis.Redis) -> ClusteringAlgorithm:
    if kind == "null":
        return NullAlgorithm()
    return load_algorithm(kind, WorkerContext(worker_name=name, redis=client, env={}))


def drain(kind: str, name: str, url: str, batch_size: int, profile_dir: str | None) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    transport = TimedTransport(StreamTransport(client, name, input_stream=INPUT_STREAM))
    settings = RuntimeSettings(worker_name=name, batch_size=batch_size, block_ms=BLOCK_MS,
                               exit_when_idle_s=IDLE_EXIT_S)
    runtime = WorkerRuntime(cast(Transport, transport), build_algorithm(kind, name, client), settings)
    profiler = cProfile.Profile() if profile_dir else None
    if profiler:
        profiler.enable()
    freeze_startup_heap()  # as `harness worker` does before its loop
    stats = runtime.run()
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(Path(profile_dir or ".") / f"worker-{name}.pstats"))
    assert transport.first_read_at is not None
    seconds = (transport.last_commit_at or transport.first_read_at) - transport.first_read_at
    return {"worker": name, "seconds": seconds, "processed": stats.processed, "batches": stats.batches,
            "errors": stats.errors, "by_outcome": stats.by_outcome}


# --- child: the raw loop, redis-py only -----------------------------------------------------------------


def raw_result(entry_id: bytes, signal: dict[str, Any], name: str, started_ms: float) -> tuple[str, bytes]:
    """A result row shaped like the harness's (same fields, same msgpack array), built by hand."""
    samples = np.frombuffer(signal["samples"], dtype="<f4")
    meta = signal["meta"]
    outcome = "clustered" if samples.size and np.isfinite(samples).all() else "error"
    now_ms = time.time() * 1000
    row = [1, signal["id"], name, "raw-1", outcome, "normal", False, float(entry_id.split(b"-", 1)[0]), now_ms,
           now_ms - started_ms, meta["device"], meta["kind"], None, None, False, entry_id.decode(), None]
    return outcome, bytes(msgpack.packb(row, use_bin_type=True))


def drain_raw(kind: str, name: str, url: str, batch_size: int, profile_dir: str | None) -> dict[str, Any]:
    """XREADGROUP a batch, decode each payload, then XADD the results and XACK the batch in one MULTI/EXEC.

    The harness's commit is one atomic Lua script, hence MULTI/EXEC here too. Not done: dedupe, dead
    letters, the production fence, heartbeats, clock correction and logs (that is the harness's cost).
    """
    client = redis.Redis.from_url(url)
    results, field = keys.results_stream(name), keys.PAYLOAD_FIELD  # names only
    client.xgroup_create(INPUT_STREAM, name, id="0", mkstream=True)
    freeze_startup_heap()  # the process set up as a harness worker's is (a stdlib gc call), so loops compare
    profiler = cProfile.Profile() if profile_dir else None
    if profiler:
        profiler.enable()
    first_read_at = last_commit_at = idle_since = None
    by_outcome: Counter[str] = Counter()
    batches = 0
    while True:
        first_read_at = first_read_at or time.perf_counter()
        reply = client.xreadgroup(name, name, {INPUT_STREAM: ">"}, count=batch_size, block=BLOCK_MS)
        if not reply or not reply[0][1]:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= IDLE_EXIT_S:
                break
            continue
        idle_since = None
        started_ms = time.time() * 1000
        entries = reply[0][1]
        pipe = client.pipeline(transaction=True)
        for entry_id, fields in entries:
            outcome, row = raw_result(entry_id, msgpack.unpackb(fields[field], raw=False), name, started_ms)
            pipe.xadd(results, {field: row})
            by_outcome[outcome] += 1
        pipe.xack(INPUT_STREAM, name, *(entry_id for entry_id, _ in entries))
        pipe.execute()
        last_commit_at = time.perf_counter()
        batches += 1
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(Path(profile_dir or ".") / f"worker-{name}.pstats"))
    seconds = (last_commit_at or first_read_at) - first_read_at
    return {"worker": name, "seconds": seconds, "processed": by_outcome.total(), "batches": batches,
            "errors": by_outcome["error"], "by_outcome": dict(by_outcome)}


if __name__ == "__main__":
    sys.exit(main())
