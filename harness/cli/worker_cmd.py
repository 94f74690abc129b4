"""`harness worker SPEC`: host legacy, the candidate or a team's own algorithm on the input."""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import replace

import click
from redis import Redis

from harness.cli import options
from harness.clustering import WorkerContext
from harness.partitions import Partition, all_partitions
from harness.runtime.heap import freeze_startup_heap
from harness.runtime.loader import BUILTIN_WORKERS, declared_hyperparameters, load_algorithm
from harness.runtime.logs import configure_logging
from harness.runtime.replicas import ReplicaSettings, ReplicaSupervisor, RuntimeThread
from harness.runtime.sentry import init_sentry
from harness.runtime.worker import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BLOCK_MS,
    DEFAULT_MAX_DELIVERIES,
    RuntimeSettings,
    WorkerObserver,
    WorkerRuntime,
)
from harness.transport.base import DEFAULT_LEASE_TTL_S, Transport
from harness.transport.connection import SOCKET_TIMEOUT_S
from harness.transport.control import RedisControl
from harness.transport.membership import RedisMembership
from harness.transport.pubsub import PubSubTransport
from harness.transport.streams import DEFAULT_DEDUPE_TTL_S, StreamTransport, wait_for_redis


@click.command("worker")
@click.argument("spec", envvar="HARNESS_WORKER")
@click.option("--name", envvar="HARNESS_WORKER_NAME", show_envvar=True, default=None,
              help="Worker name: its consumer group, results stream and state. Default: SPEC "
                   "for legacy/candidate, the factory's module otherwise.")
@options.redis_connection
@options.input_stream
@click.option("--transport", "transport_kind", envvar="HARNESS_TRANSPORT", show_envvar=True, show_default=True,
              default="streams", type=click.Choice(["streams", "pubsub"]),
              help="streams: lossless consumer groups. pubsub: attach to an existing channel (lossy "
                   "while the worker is away).")
@options.input_channel
@click.option("--batch-size", envvar="HARNESS_BATCH_SIZE", show_envvar=True, show_default=True,
              default=DEFAULT_BATCH_SIZE, type=click.IntRange(1, 5000), help="Entries read per batch.")
@click.option("--block-ms", envvar="HARNESS_BLOCK_MS", show_envvar=True, show_default=True,
              default=DEFAULT_BLOCK_MS, type=click.IntRange(1), help="How long one read waits for input.")
@click.option("--max-deliveries", envvar="HARNESS_MAX_DELIVERIES", show_envvar=True, show_default=True,
              default=DEFAULT_MAX_DELIVERIES, type=click.IntRange(1),
              help="An entry delivered more often than this without an ack goes to the dead-letter stream.")
@options.max_samples
@click.option("--start-from", envvar="HARNESS_START_FROM", show_envvar=True, show_default=True, default="0",
              help="Where a new consumer group starts: 0 (all retained input) or $ (only new input).")
@click.option("--exit-when-idle", envvar="HARNESS_EXIT_WHEN_IDLE", show_envvar=True, default=None,
              type=click.FloatRange(0), help="Exit after this many seconds without input (drains, benchmarks).")
@click.option("--dedupe-ttl", envvar="HARNESS_DEDUPE_TTL", show_envvar=True, show_default=True,
              default=DEFAULT_DEDUPE_TTL_S, type=click.IntRange(1),
              help="Seconds a signal id is remembered to reject a duplicate id (one small key per id).")
@click.option("--lease-ttl", envvar="HARNESS_LEASE_TTL", show_envvar=True, show_default=True,
              default=DEFAULT_LEASE_TTL_S, type=click.FloatRange(1.0),
              help="Seconds a dead worker's lease outlives it; a live worker renews it every third. "
                   "A second copy of a live worker refuses to start.")
@click.option("--hyperparameters", "list_hyperparameters", is_flag=True, default=False,
              help="List the hyperparameters SPEC declares (variable, default, rule, meaning) and exit.")
@click.option("--reset-state", envvar="HARNESS_RESET_STATE", show_envvar=True, is_flag=True, default=False,
              help="Delete this worker's stored model state and start fresh. Needed when the stored state "
                   "belongs to another model version (other hyperparameters): it is never mixed.")
@click.option("--init-primary", envvar="HARNESS_INIT_PRIMARY", show_envvar=True, is_flag=True, default=False,
              help="On a first deployment (no roles yet), make this worker primary: it feeds production.")
@options.partitions
@options.metrics_port
@options.metrics_host
@options.log_level
@options.log_format
def worker_command(
    spec: str, name: str | None, redis: options.RedisTarget, input_stream: str, partitions: int, transport_kind: str,
    channel: str,
    batch_size: int, block_ms: int, max_deliveries: int, max_samples: int, start_from: str,
    exit_when_idle: float | None, dedupe_ttl: int, lease_ttl: float, list_hyperparameters: bool, reset_state: bool,
    init_primary: bool,
    metrics_port: int, metrics_host: str, log_level: str, log_format: str,
) -> None:
    """Run one worker. SPEC is legacy, candidate or MODULE:FACTORY.

    FACTORY(context) returns an object with `model_version` and `assign_batch(signals)`, or a
    plain function `fn(signal) -> label | None` that is hosted unchanged. SENTRY_DSN, when
    set, turns on exception capture.
    """
    if list_hyperparameters:
        declared = declared_hyperparameters(spec)
        click.echo(declared.describe() if declared else f"{spec} declares no hyperparameters")
        return
    configure_logging(log_level, json_lines=log_format == "json")
    # Until the runtime takes over: nothing is in hand yet, so a stop request is a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    worker_name = name or (spec if spec in BUILTIN_WORKERS else spec.partition(":")[0].rsplit(".", 1)[-1])
    # A blocking read waits up to --block-ms: the socket must wait longer than that.
    client = redis.client(socket_timeout=max(SOCKET_TIMEOUT_S, block_ms / 1000.0 + 5.0))
    wait_for_redis(client, timeout_s=30.0)
    settings = RuntimeSettings(
        worker_name=worker_name, batch_size=batch_size, block_ms=block_ms, max_deliveries=max_deliveries,
        max_samples=max_samples, exit_when_idle_s=exit_when_idle, lease_ttl_s=lease_ttl, reset_state=reset_state,
    )
    if partitions > 1:
        if transport_kind == "pubsub":
            raise click.UsageError("--partitions splits the input streams; pub/sub has no partitions")
        run_replica(spec, client, settings, partitions, input_stream, start_from, dedupe_ttl, init_primary)
        return
    algorithm = load_algorithm(spec, WorkerContext(worker_name=worker_name, redis=client, env=dict(os.environ)))
    transport: Transport
    if transport_kind == "pubsub":
        transport = PubSubTransport(client, worker_name, channel, dedupe_ttl_s=dedupe_ttl)
    else:
        transport = StreamTransport(client, worker_name, input_stream=input_stream, start_id=start_from,
                                    dedupe_ttl_s=dedupe_ttl)
    init_sentry(worker_name, algorithm.model_version)
    if init_primary and transport.claim_primary_if_unset():
        logging.getLogger("harness.worker").info("no roles yet: this worker is primary", extra={"epoch": 1})
    observer: WorkerObserver | None = None
    if metrics_port:
        from harness.metrics.server import new_registry, serve
        from harness.metrics.worker import WorkerMetrics

        registry = new_registry()
        observer = WorkerMetrics(worker_name, algorithm.model_version, registry)
        serve(registry, metrics_host, metrics_port)  # a daemon thread: it ends with the process
    runtime = WorkerRuntime(transport, algorithm, settings, observer)
    runtime.install_signal_handlers()
    freeze_startup_heap()
    runtime.run()
    if runtime.lease_lost:
        raise SystemExit(f"harness worker: {worker_name} stopped: another copy took over its lease")


def run_replica(spec: str, client: Redis, settings: RuntimeSettings, partitions: int, input_stream: str,
                start_from: str, dedupe_ttl: int, init_primary: bool) -> None:
    """One replica of a partitioned worker: a runtime per partition it owns (docs/partitions.md)."""
    name = settings.worker_name
    # Built once up front, so that a bad spec or hyperparameter stops the replica with one line at start.
    checked = load_algorithm(spec, WorkerContext(name, client, dict(os.environ), all_partitions(partitions)[0]))
    init_sentry(name, checked.model_version)
    if init_primary:  # the deployment's epoch record, then each partition's roles (docs/partitions.md)
        RedisControl(client, name).claim_primary_if_unset()
        for partition in all_partitions(partitions):
            RedisControl(client, name, partition).claim_primary_if_unset()

    def runtime_for(partition: Partition) -> WorkerRuntime:
        context = WorkerContext(worker_name=name, redis=client, env=dict(os.environ), partition=partition)
        transport = StreamTransport(client, name, input_stream=input_stream, start_id=start_from,
                                    dedupe_ttl_s=dedupe_ttl, partition=partition)
        # A partition another replica holds is left for the next round rather than waited for.
        return WorkerRuntime(transport, load_algorithm(spec, context), replace(settings, lease_wait_s=0.0))

    replica = ReplicaSupervisor(
        ReplicaSettings(name, partitions, settings.lease_ttl_s or DEFAULT_LEASE_TTL_S,
                        exit_when_idle=settings.exit_when_idle_s is not None),
        RedisMembership(client, name), lambda partition: RuntimeThread(partition, runtime_for))
    signal.signal(signal.SIGTERM, replica.request_stop)
    signal.signal(signal.SIGINT, replica.request_stop)
    freeze_startup_heap()
    replica.run()


COMMANDS = [worker_command]
