"""Comparator throughput against a plain XREAD drain of the same streams, and report() time at 1M pairs.

1. Pre-fills harness:results:legacy and harness:results:candidate with --pairs encoded SignalClustered
   results each (about 20 clusters over 8 devices, a little disagreement, a few errors and declines).
2. Baseline: XREAD both streams in chunks of --read-count, decoding nothing -> raw_drain_pairs_per_s.
3. ComparatorService (its default settings, but exit when idle) over the same streams, timed until it has
   ingested every result of both sides -> pairs_per_s; the matched count is checked afterwards.
   Steps 2 and 3 run --runs times (each service run with a fresh consumer group); the best of each is kept.
4. A ComparatorState fed --report-pairs pairs in-process (wire maps, in batches); report() is timed, best of
   --repeats -> report_ms_at_1m.

The last line printed is a JSON summary.

    python benchmarks/bench_comparator.py [--pairs 200000] [--report-pairs 1000000]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import redis

from harness.comparator.service import ComparatorService, ComparatorSettings, default_feeds
from harness.comparator.state import ComparatorState
from harness.contracts import SignalClustered, clustered_to_dict, encode_clustered
from harness.embedded_redis import EmbeddedRedis
from harness.transport import keys

LEGACY_STREAM = keys.results_stream("legacy")
CANDIDATE_STREAM = keys.results_stream("candidate")
DEVICES = 8
CLUSTERS_PER_DEVICE = (3, 2, 3, 2, 2, 3, 2, 2)  # + "normal": 20 clusters in all
ANOMALY_KINDS = ("sag", "swell", "transient_spike", "dropout", "noise_burst", "slow_drift", "negative_glitch")
NORMAL_SHARE = 0.5
DISAGREEMENT = 0.05  # the candidate picks another cluster of the same device
LEGACY_ERRORS = 0.001
CANDIDATE_DECLINES = 0.003
FILL_CHUNK = 2_000
BATCH_PAIRS = 10_000  # pairs per ingest batch when building the 1M-pair state
BASE_MS = 1.7e12
TARGET_PAIRS_PER_S = 80_000.0
TARGET_RATIO = 0.5
TARGET_REPORT_MS = 50.0


# --- realistic results --------------------------------------------------------------------------------


def result_pairs(first: int, count: int, seed: int) -> tuple[list[SignalClustered], list[SignalClustered]]:
    """Results for signals first..first+count-1, as legacy and the candidate would publish them."""
    rng = np.random.default_rng([seed, first])
    device = rng.integers(DEVICES, size=count)
    normal = rng.random(count) < NORMAL_SHARE
    per_device = np.asarray(CLUSTERS_PER_DEVICE)[device]
    cluster = np.where(normal, 0, 1 + (rng.random(count) * per_device).astype(np.int64))
    other = 1 + (rng.random(count) * per_device).astype(np.int64)
    candidate_cluster = np.where(~normal & (rng.random(count) < DISAGREEMENT), other, cluster)
    legacy_error = rng.random(count) < LEGACY_ERRORS
    candidate_declined = rng.random(count) < CANDIDATE_DECLINES
    entered = BASE_MS + (first + np.arange(count)) * 0.1
    legacy_proc = rng.lognormal(np.log(0.8), 0.4, count)
    candidate_proc = rng.lognormal(np.log(0.06), 0.3, count)
    legacy_e2e = legacy_proc + rng.lognormal(np.log(40.0), 0.6, count)
    candidate_e2e = candidate_proc + rng.lognormal(np.log(12.0), 0.6, count)
    # plain Python values, as a msgpack decode would give them
    device, cluster, candidate_cluster = device.tolist(), cluster.tolist(), candidate_cluster.tolist()
    legacy_error, candidate_declined = legacy_error.tolist(), candidate_declined.tolist()
    entered, legacy_proc, candidate_proc = entered.tolist(), legacy_proc.tolist(), candidate_proc.tolist()
    legacy_e2e, candidate_e2e = legacy_e2e.tolist(), candidate_e2e.tolist()
    legacy: list[SignalClustered] = []
    candidate: list[SignalClustered] = []
    for j in range(count):
        sid = f"sig-{first + j:08d}"
        dev = f"dev-{device[j]:02d}"
        # Its input entry, as real workers name it: the comparator joins by progress through the input.
        entry = f"{int(BASE_MS) + (first + j) // 10}-{(first + j) % 10}"
        k, ck = cluster[j], candidate_cluster[j]
        kind = "normal" if k == 0 else ANOMALY_KINDS[(device[j] + k) % len(ANOMALY_KINDS)]
        if legacy_error[j]:
            legacy.append(SignalClustered(sid, "legacy", "legacy-1.0", "error", None, False, entered[j],
                                          entered[j] + legacy_e2e[j], legacy_proc[j], dev, kind,
                                          "ValueError", "could not broadcast input array", input_entry_id=entry))
        else:
            legacy.append(SignalClustered(sid, "legacy", "legacy-1.0", "clustered",
                                          "normal" if k == 0 else f"{dev}:{k}", False, entered[j],
                                          entered[j] + legacy_e2e[j], legacy_proc[j], dev, kind,
                                          input_entry_id=entry))
        if candidate_declined[j]:
            candidate.append(SignalClustered(sid, "candidate", "candidate-1.0", "unclustered", None, False,
                                             entered[j], entered[j] + candidate_e2e[j], candidate_proc[j], dev,
                                             kind, "declined", "negative voltage", input_entry_id=entry))
        else:
            candidate.append(SignalClustered(sid, "candidate", "candidate-1.0", "clustered",
                                             "normal" if ck == 0 else f"{dev}/k{ck}", False, entered[j],
                                             entered[j] + candidate_e2e[j], candidate_proc[j], dev, kind,
                                             input_entry_id=entry))
    return legacy, candidate


def fill(client: redis.Redis, pairs: int, seed: int) -> float:
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for first in range(0, pairs, FILL_CHUNK):
        legacy, candidate = result_pairs(first, min(FILL_CHUNK, pairs - first), seed)
        for stream, results in ((LEGACY_STREAM, legacy), (CANDIDATE_STREAM, candidate)):
            for result in results:
                pipe.xadd(stream, {keys.PAYLOAD_FIELD: encode_clustered(result)})
        pipe.execute()
    return time.perf_counter() - started


# --- the three measurements -------------------------------------------------------------------------------


def raw_drain(client: redis.Redis, read_count: int) -> tuple[float, int]:
    """XREAD both streams from the start until both are exhausted; no decoding. (seconds, entries read)."""
    cursors = {LEGACY_STREAM: "0-0", CANDIDATE_STREAM: "0-0"}
    read = 0
    started = time.perf_counter()
    while True:
        response = client.xread(cursors, count=read_count)
        if not response:
            break
        for stream, entries in response:
            cursors[stream.decode()] = entries[-1][0]
            read += len(entries)
    return time.perf_counter() - started, read


def run_comparator(
    client: redis.Redis, expected_entries: int, run: int, profile: cProfile.Profile | None
) -> dict[str, Any]:
    """Times the service until it has ingested every entry of both streams; then lets it exit and checks.

    Each run has its own consumer group and checkpoint key, so it starts from scratch on the same streams.
    """
    settings = ComparatorSettings(feeds=default_feeds(), exit_when_idle_s=0.0, block_ms=100,
                                  group=f"bench-comparator-{run}", state_key=f"bench:comparator:state:{run}")
    service = ComparatorService(client, settings)
    ingested = 0
    done_at: float | None = None
    poll_once = service.poll_once

    def counted_poll() -> int:
        nonlocal ingested, done_at
        got = poll_once()
        ingested += got
        if done_at is None and ingested >= expected_entries:
            done_at = time.perf_counter()
        return got

    service.poll_once = counted_poll  # type: ignore[method-assign]
    if profile:
        profile.enable()
    started = time.perf_counter()
    state = service.run()
    finished = time.perf_counter()
    if profile:
        profile.disable()
    counts = state.report()["counts"]
    return {"seconds": (done_at or finished) - started, "with_exit_s": finished - started,
            "ingested": ingested, "counts": counts}


def wire_batches(pairs: int, seed: int) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    for first in range(0, pairs, BATCH_PAIRS):
        legacy, candidate = result_pairs(first, min(BATCH_PAIRS, pairs - first), seed)
        yield [clustered_to_dict(r) for r in legacy], [clustered_to_dict(r) for r in candidate]


def report_at(pairs: int, repeats: int, seed: int) -> dict[str, Any]:
    state = ComparatorState()
    started = time.perf_counter()
    ingest_s = 0.0
    for legacy, candidate in wire_batches(pairs, seed):
        now_ms = time.time() * 1000.0
        before = time.perf_counter()
        state.ingest("legacy", legacy, now_ms)
        state.ingest("candidate", candidate, now_ms)
        ingest_s += time.perf_counter() - before
    built_s = time.perf_counter() - started
    timings = []
    for _ in range(repeats):
        before = time.perf_counter()
        report = state.report()
        timings.append((time.perf_counter() - before) * 1000.0)
    before = time.perf_counter()
    saved = state.to_bytes()
    to_bytes_ms = (time.perf_counter() - before) * 1000.0
    return {"report_ms": min(timings), "report_ms_all": timings, "matched": report["counts"]["matched"],
            "ari": report["agreement"]["ari"], "ingest_pairs_per_s": pairs / ingest_s if ingest_s else 0.0,
            "built_s": built_s, "to_bytes_ms": to_bytes_ms, "state_bytes": len(saved)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200_000, help="results per stream for the service run")
    parser.add_argument("--read-count", type=int, default=2_000, help="entries per XREAD in the baseline")
    parser.add_argument("--report-pairs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="report() timings; the best is kept")
    parser.add_argument("--runs", type=int, default=3, help="raw drains and service runs; the best of each is kept")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--profile", metavar="DIR", help="write cProfile .pstats of the service run into DIR")
    args = parser.parse_args(argv)

    profile = cProfile.Profile() if args.profile else None
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        fill_s = fill(client, args.pairs, args.seed)
        print(f"filled {LEGACY_STREAM} and {CANDIDATE_STREAM}: {client.xlen(LEGACY_STREAM):,} + "
              f"{client.xlen(CANDIDATE_STREAM):,} results in {fill_s:.1f} s", flush=True)
        raw_pairs_per_s, pairs_per_s = 0.0, 0.0
        counts: dict[str, Any] = {}
        runs = max(args.runs, 1)
        for run in range(runs):
            gc.collect()
            raw_s, raw_read = raw_drain(client, args.read_count)
            raw_pairs_per_s = max(raw_pairs_per_s, args.pairs / raw_s)
            print(f"raw XREAD drain {run + 1}/{runs}: {raw_read:,} entries in {raw_s:.2f} s = "
                  f"{args.pairs / raw_s:,.0f} pairs/s", flush=True)
        for run in range(runs):
            gc.collect()
            service = run_comparator(client, 2 * args.pairs, run, profile if run == 0 else None)
            pairs_per_s = max(pairs_per_s, args.pairs / service["seconds"])
            print(f"comparator {run + 1}/{runs}: {service['ingested']:,} entries in {service['seconds']:.2f} s = "
                  f"{args.pairs / service['seconds']:,.0f} pairs/s ({service['with_exit_s']:.2f} s with the idle "
                  f"exit and final checkpoint)", flush=True)
            if counts and counts["matched"] != service["counts"]["matched"]:
                counts["matched"] = -1  # runs disagree: reported as WRONG below
            counts = counts or service["counts"]
        client.close()
    if profile and args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(Path(args.profile) / "comparator-service.pstats"))

    gc.collect()
    at_scale = report_at(args.report_pairs, args.repeats, args.seed)
    ratio = pairs_per_s / raw_pairs_per_s
    # every result of both sides counted once, every signal paired: nothing skipped, nothing twice
    complete = (counts["legacy_outputs"] == counts["candidate_outputs"] == args.pairs and counts["pending"] == 0
                and counts["missing_legacy"] + counts["missing_candidate"] + counts["duplicates"] == 0)
    check = "ok" if counts["matched"] == args.pairs and complete and at_scale["matched"] == args.report_pairs \
        else "WRONG"
    print()
    print(f"{'figure':<42} {'value':>14}  target")
    rows = [
        ("raw XREAD drain, pairs/s (best)", f"{raw_pairs_per_s:,.0f}", ""),
        ("comparator service, pairs/s (best)", f"{pairs_per_s:,.0f}", f">= {TARGET_PAIRS_PER_S:,.0f}"),
        ("ratio to the raw drain", f"{ratio:.3f}", f">= {TARGET_RATIO}"),
        ("matched (service run)", f"{counts['matched']:,}", f"= {args.pairs:,} ({check})"),
        ("missing / duplicates / rejected", f"{counts['missing_legacy'] + counts['missing_candidate']} / "
                                            f"{counts['duplicates']} / {counts['rejected']}", ""),
        (f"state.ingest at {args.report_pairs:,}, pairs/s", f"{at_scale['ingest_pairs_per_s']:,.0f}", ""),
        (f"report() at {args.report_pairs:,} pairs, ms", f"{at_scale['report_ms']:.1f}", f"<= {TARGET_REPORT_MS:.0f}"),
        ("report() all runs, ms", " ".join(f"{t:.1f}" for t in at_scale["report_ms_all"]), ""),
        ("to_bytes() (checkpoint) at that size, ms", f"{at_scale['to_bytes_ms']:.1f}",
         f"{at_scale['state_bytes'] / 1e6:.1f} MB"),
        ("ARI at that size", f"{at_scale['ari']:.4f}", ""),
    ]
    for name, value, target in rows:
        print(f"{name:<42} {value:>14}  {target}")
    met = (pairs_per_s >= TARGET_PAIRS_PER_S and ratio >= TARGET_RATIO
           and at_scale["report_ms"] <= TARGET_REPORT_MS)
    print(f"\ntargets: {'met' if met else 'MISSED'}")
    print(json.dumps({"pairs_per_s": round(pairs_per_s, 1), "raw_drain_pairs_per_s": round(raw_pairs_per_s, 1),
                      "ratio": round(ratio, 3), "report_ms_at_1m": round(at_scale["report_ms"], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
