"""`harness serve`: options and wiring only (harness/serve.py answers the requests)."""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
from pathlib import Path

import click

from harness.cli import options
from harness.errors import HarnessError
from harness.runtime.logs import configure_logging
from harness.serve import DEFAULT_HOST, DEFAULT_PORT, Endpoints, make_server, serve_until_stopped


@click.command("serve")
@options.redis_connection
@options.option("--host", envvar="HARNESS_SERVE_HOST", default=DEFAULT_HOST,
                help="Address to bind: loopback, or 0.0.0.0 behind the operator's network (no authentication).")
@options.option("--port", envvar="HARNESS_SERVE_PORT", default=DEFAULT_PORT, type=click.IntRange(0, 65535),
                help="Port to bind; 0 picks a free one (printed at start).")
@options.option("--policies-dir", envvar="HARNESS_POLICIES_DIR", default=Path("policies"),
                type=click.Path(file_okay=False, path_type=Path),
                help="Folder of the policies /gate?policy=NAME may use (NAME.toml); nothing outside it is read.")
@options.experiment
@options.log_level
@options.log_format
def serve_command(redis: options.RedisTarget, host: str, port: int, policies_dir: Path, experiment: str | None,
                  log_level: str, log_format: str) -> None:
    """Serve /report (harness.report/1 JSON), /gate?policy=NAME, /metrics and /healthz over HTTP.

    /gate answers 200 on pass, 412 on fail, 409 when inconclusive and 503 without a comparison, with
    the verdict JSON: an Argo Rollouts analysis, a Flagger webhook or `curl -f` gates on it
    (docs/progressive-delivery.md). Each path takes ?experiment=NAME (default: --experiment, else the
    current experiment). Stops on Ctrl-C or SIGTERM (exit 0).
    """
    configure_logging(log_level, json_lines=log_format == "json")
    if not policies_dir.is_dir():
        raise click.BadParameter(f"{policies_dir} is not a folder", param_hint="'--policies-dir'")
    endpoints = Endpoints(redis.client(), str(redis), policies_dir, experiment)
    try:
        server = make_server(endpoints, host, port)
    except OSError as exc:
        why = "it is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise HarnessError(f"cannot serve on {host}:{port}: {why} (--port / HARNESS_SERVE_PORT)") from None
    bound = server.server_address[1]
    click.echo(f"serving http://{host}:{bound}/ (report, gate, metrics, healthz) for Redis {redis}; "
               f"policies from {policies_dir}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how an operator stops it: exit 0
        serve_until_stopped(server, stop)


COMMANDS = [serve_command]
