"""Redis key names, in one place so every component agrees on them.

`worker_state_keys` lists what a worker owns; `harness retire` removes exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from harness.partitions import Partition

ALL_KEYS_PATTERN = "harness:*"  # SCAN MATCH for every key the harness writes (demo --reset)
DEFAULT_INPUT_STREAM = "harness:signals"
DEFAULT_INPUT_CHANNEL = "harness:signals:live"
PAYLOAD_FIELD = b"data"  # the stream entry field that carries one encoded message

ROLES_KEY = "harness:roles"  # hash: primary, epoch (the fencing token), watermark, switched_at_ms
PRODUCTION_STREAM = "harness:production"  # what downstream consumers read: the primary's results
PRODUCTION_CHANNEL = "harness:production:live"  # the same results, for pub/sub consumers
AUDIT_STREAM = "harness:audit"
PRODUCED_KEY = "harness:stats:produced"  # signals sent by `harness produce`, for the report's counts
PRODUCER_RUNS_KEY = "harness:stats:produced:runs"  # hash run id -> signals of that run written (resume)
PRODUCED_LOST_KEY = "harness:stats:produced:lost"  # signals acknowledged to a producer, then lost by the store
CUTOVER_KEY = "harness:cutover"  # hash: progress of the running or last cutover, for idempotent re-runs
COMPARATOR_STATE_KEY = "harness:comparator:state"  # the msgpack checkpoint of ComparatorState
COMPARATOR_SUMMARY_KEY = "harness:comparator:summary"  # a small hash for progress displays and `status`
RETIRED_KEY = "harness:retired"  # hash worker -> retired_at_ms: its group and state are gone, no rollback to it
EXPERIMENTS_KEY = "harness:experiments"  # hash experiment name -> its JSON record (harness/experiments.py)
CURRENT_EXPERIMENT_KEY = "harness:experiments:current"  # the name of the experiment the comparator serves
DEFAULT_EXPERIMENT = "default"  # the implicit experiment (legacy vs candidate) before any is defined
COMPARATOR_GROUP = "comparator"  # the comparator's consumer group on each results stream (default experiment)


def scoped(key: str, partition: Partition | None) -> str:
    """`key` as partition `partition` names it: its hash tag after the 'harness:' prefix
    (harness:results:legacy -> harness:{p3}:results:legacy), so a partition's keys share one slot.
    Unchanged when the input is not partitioned (no partition, or P = 1)."""
    tag = partition.tag if partition is not None else None
    if tag is None:
        return key
    prefix, _, rest = key.partition(":")
    return f"{prefix}:{tag}:{rest}"


def results_stream(worker: str) -> str:
    return f"harness:results:{worker}"


def dead_letter_stream(worker: str) -> str:
    return f"harness:deadletter:{worker}"


def seen_ids_prefix(worker: str) -> str:
    """One hash per window of time under this prefix (signal id -> input entry): the duplicate-id check."""
    return f"harness:seen-ids:{worker}:"


def seen_ids_key(worker: str, window: int) -> str:
    return seen_ids_prefix(worker) + str(window)


def state_prefix(worker: str) -> str:
    """Every key of a worker's model state starts with this; the hosted algorithm owns the rest."""
    return f"harness:state:{worker}:"


def state_pattern(worker: str) -> str:
    """SCAN MATCH pattern of every key of the worker's model state (its algorithm's own keys)."""
    return _glob_escape(state_prefix(worker)) + "*"


def model_state_key(worker: str) -> str:
    """Hash: model_version (what the stored state belongs to), snapshot (an algorithm's own bytes),
    entry (the last input entry the snapshot has learned); written with the acks, atomically."""
    return f"harness:model:{worker}"


def device_state_key(worker: str, device_id: str, partition: Partition | None = None) -> str:
    """The per-device hash in which the legacy and candidate workers keep their clusters (in the slot of
    the device's partition, so one MULTI/EXEC may write a batch's devices on a Redis Cluster)."""
    return scoped(f"{state_prefix(worker)}device:{device_id}", partition)


def control_key(worker: str) -> str:
    """'drain' here tells the worker to finish its batch, ack it and exit (set by the cutover)."""
    return f"harness:control:{worker}"


def replicas_key(worker: str) -> str:
    """Sorted set replica id -> expiry (ms, server clock): the live replicas that share a worker's partitions."""
    return f"harness:replicas:{worker}"


def heartbeat_key(worker: str) -> str:
    return f"harness:workers:{worker}"


def launch_key(worker: str) -> str:
    """Hash: how a cutover found the worker's process (argv, cwd, non-secret env) and where a restart logs."""
    return f"harness:launch:{worker}"


def tap_stream(worker: str) -> str:
    """Where `harness tap` copies a production worker's own output channel, for the comparator."""
    return f"harness:tap:{worker}"


def reader_cursors_key(stream: str) -> str:
    """Hash group -> last entry counted, for readers that checkpoint instead of acking (comparator)."""
    return f"harness:cursors:{stream}"


def checkpoint_cursors_key(state_key: str) -> str:
    """Hash stream -> last entry that the checkpoint stored at `state_key` has counted."""
    return f"{state_key}:cursors"


# One experiment's keys: the implicit default experiment keeps the keys the comparator always had.


def experiment_state_key(name: str) -> str:
    """The msgpack checkpoint of the experiment's ComparatorState."""
    return COMPARATOR_STATE_KEY if name == DEFAULT_EXPERIMENT else f"harness:experiment:{name}:state"


def experiment_summary_key(name: str) -> str:
    """The experiment's small progress hash (counts, ari, lag, updated_ms, control, candidate)."""
    return COMPARATOR_SUMMARY_KEY if name == DEFAULT_EXPERIMENT else f"harness:experiment:{name}:summary"


def experiment_report_key(name: str) -> str:
    """The harness.report/1 JSON an experiment ended with, kept for looking back."""
    return f"harness:experiment:{name}:report"


def experiment_keys_pattern() -> str:
    """Every key of every named experiment (not the registry): what a comparator writes (ACL)."""
    return "harness:experiment:*"


def experiment_group(name: str, base: str = COMPARATOR_GROUP) -> str:
    """The comparator's consumer group on the results streams while it serves this experiment."""
    return base if name == DEFAULT_EXPERIMENT else f"{base}:{name}"


def comparator_lease_name(group: str = COMPARATOR_GROUP) -> str:
    """The name under which comparator shards lease a partition (lease_key) and list themselves (replicas_key).
    It has two ':' and a worker name none (check_worker_name), so no worker's lease or token key is ever it."""
    return f"comparator:{group}:shards"


def comparator_shard_patterns() -> tuple[str, str]:
    """Every comparator group's shard leases (and their tokens) and shard list: what shards write (ACL)."""
    return (_glob_escape(lease_key("comparator:")) + "*", _glob_escape(replicas_key("comparator:")) + "*")


@dataclass(frozen=True)
class WorkerKeys:
    """The keys one worker owns: exact names, and SCAN MATCH patterns for its per-device/per-signal keys."""

    exact: tuple[str, ...]
    patterns: tuple[str, ...]


def check_worker_name(worker: str) -> str:
    """A worker name is one key segment: with a ':', worker 'a' would own the keys of worker 'a:b'."""
    if not worker or ":" in worker:
        raise ValueError(f"worker name {worker!r}: give a non-empty name without ':'")
    return worker


def worker_state_keys(worker: str) -> WorkerKeys:
    """What a retired worker leaves behind: control flag, heartbeat, launch spec, model state, dedupe keys.

    Not listed: its results and dead-letter streams (and the dropped count), the record that the
    report and the export read; its lease token, which must only grow should the name come back;
    its lease, which expires by itself.
    """
    check_worker_name(worker)
    return WorkerKeys(
        exact=(control_key(worker), heartbeat_key(worker), model_state_key(worker), launch_key(worker)),
        patterns=(_glob_escape(state_prefix(worker)) + "*", _glob_escape(seen_ids_prefix(worker)) + "*"),
    )


def _glob_escape(literal: str) -> str:
    # A worker name with glob characters must match only itself in SCAN MATCH.
    return re.sub(r"([\\*?\[\]])", r"\\\1", literal)


def lease_key(worker: str) -> str:
    """String '<token> <host> <pid>' with a TTL: the one live consumer of a worker name (its fencing token)."""
    return f"harness:lease:{worker}"


def lease_token_key(worker: str) -> str:
    """Counter: every lease taken gets a larger token, so a stale holder's commit is refused."""
    return f"harness:lease:{worker}:token"


def dead_letters_dropped_key(worker: str) -> str:
    """Counter: dead letters trimmed off the bounded dead-letter stream (never silent)."""
    return f"harness:deadletter:{worker}:dropped"


# ACL key patterns (harness acl): glob patterns built from the key functions above, so a renamed key
# moves its permission with it.


def literal_pattern(key: str) -> str:
    """A glob pattern that matches exactly `key`."""
    return _glob_escape(key)


def in_every_partition(pattern: str) -> str:
    """The pattern of the same keys in every partition (harness:x -> harness:{p*}:x; see `scoped`)."""
    prefix, _, rest = pattern.partition(":")
    return f"{prefix}:{{p*}}:{rest}"


def every_worker(key_of_worker: Callable[[str], str]) -> str:
    """The glob pattern of one kind of per-worker key for every worker, e.g. every results stream."""
    return key_of_worker("*")


def worker_owned_patterns(worker: str) -> tuple[str, ...]:
    """ACL patterns of every key a worker writes: results, dead letters, dedupe, model state, heartbeat, lease,
    replicas."""
    check_worker_name(worker)
    exact = (results_stream(worker), dead_letter_stream(worker), dead_letters_dropped_key(worker),
             heartbeat_key(worker), lease_key(worker), lease_token_key(worker), model_state_key(worker),
             replicas_key(worker))
    prefixes = (seen_ids_prefix(worker), state_prefix(worker))
    return tuple(_glob_escape(key) for key in exact) + tuple(_glob_escape(prefix) + "*" for prefix in prefixes)
