"""Serves a registry on http://HOST:PORT/metrics from a daemon thread (prometheus-client's WSGI server)."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    disable_created_metrics,
    start_http_server,
)

from harness.errors import HarnessError

log = logging.getLogger("harness.metrics")

DEFAULT_METRICS_HOST = "127.0.0.1"  # loopback unless told otherwise: a container network sets 0.0.0.0


@dataclass(frozen=True)
class MetricsServer:
    host: str
    port: int  # the bound port (the one asked for, or the one the system chose for 0 in tests)
    _httpd: WSGIServer

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def new_registry() -> CollectorRegistry:
    """A registry of its own (never the global one), with the process's CPU, memory, GC and Python version."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def serve(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Start serving `registry`; a port that cannot be bound is one line naming it."""
    # `*_created` series double every counter and histogram for a timestamp nobody queries here.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        httpd, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        why = "it is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise HarnessError(f"cannot serve metrics on {host}:{port}: {why} (--metrics-port / HARNESS_METRICS_PORT)"
                           ) from None
    server = MetricsServer(host, int(httpd.server_address[1]), httpd)
    log.info("metrics served", extra={"url": f"http://{host}:{server.port}/metrics"})
    return server
