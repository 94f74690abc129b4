"""`harness serve`: the live report, the gate and metrics over HTTP, for Argo Rollouts, Flagger, CI and Prometheus.

/report is the harness.report/1 JSON; /gate?policy=NAME answers 200 on pass and 412 / 409 / 503 otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, disable_created_metrics, generate_latest

from harness.gate.live import judge_loaded
from harness.gate.policy import PolicyError, load_policy
from harness.gate.verdict import GateResult, Verdict, to_json
from harness.report.source import LoadedReport, live_report
from harness.transport.connection import redact

log = logging.getLogger("harness.serve")

DEFAULT_HOST = "127.0.0.1"  # loopback unless told otherwise
DEFAULT_PORT = 9180  # next to the workers' and comparator's metrics ports (9464) without clashing
POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a file name: no separator, no leading dot
# What a controller reads from the status: only a pass is 2xx, so any webhook or `curl -f` gates on it.
TRUE = ("1", "true", "yes")
MAX_BODY = 65_536  # a webhook's JSON payload (Flagger POSTs one) is read and ignored; larger is refused
GATE_STATUS = {Verdict.PASS: HTTPStatus.OK, Verdict.FAIL: HTTPStatus.PRECONDITION_FAILED,
               Verdict.INCONCLUSIVE: HTTPStatus.CONFLICT}


@dataclass(frozen=True)
class Answer:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"


class PolicyNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Endpoints:
    """What each path answers, independent of the HTTP server (so it can be called directly)."""

    client: redis.Redis
    where: str  # the Redis as shown to a user, password hidden
    policies_dir: Path
    experiment: str | None = None  # served when a request names none; None: the current experiment

    def answer(self, target: str) -> Answer:
        url = urlsplit(target)
        routes: dict[str, Callable[[dict[str, list[str]]], Answer]] = {
            "/healthz": lambda _: json_answer(HTTPStatus.OK, {"status": "ok"}),
            "/report": self.report, "/gate": self.gate, "/metrics": self.metrics}
        route = routes.get(url.path.rstrip("/") or "/")
        if route is None:
            return json_answer(HTTPStatus.NOT_FOUND, {"error": f"no such path {url.path}; try {', '.join(routes)}"})
        return route(parse_qs(url.query))

    def loaded(self, query: dict[str, list[str]]) -> LoadedReport:
        """The live report of ?experiment=NAME, else of the server's --experiment, else of the current one."""
        return live_report(self.client, self.where, query.get("experiment", [self.experiment])[-1])

    def report(self, query: dict[str, list[str]]) -> Answer:
        loaded = self.loaded(query)
        if loaded.report is None:
            return json_answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": loaded.problem})
        return json_answer(HTTPStatus.OK, loaded.report)

    def gate(self, query: dict[str, list[str]]) -> Answer:
        names = query.get("policy", [])
        if len(names) != 1:
            return json_answer(HTTPStatus.BAD_REQUEST, {"error": "give one policy: /gate?policy=NAME"})
        try:
            path = policy_path(self.policies_dir, names[0])
        except ValueError as exc:
            return json_answer(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except PolicyNotFound as exc:
            return json_answer(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        try:
            policy = load_policy(path)
        except PolicyError as exc:  # the operator's file is broken: the server's fault, not the caller's
            return json_answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)})
        loaded = self.loaded(query)
        result = judge_loaded(loaded, policy)
        status = gate_status(loaded, result)
        if loaded.report is not None and query.get("always_200", [""])[-1].lower() in TRUE:
            status = HTTPStatus.OK  # a caller that reads the verdict from the body (Argo Rollouts' web provider)
        return json_answer(status, to_json(result))

    def metrics(self, query: dict[str, list[str]]) -> Answer:
        return Answer(HTTPStatus.OK, exposition(self.loaded(query)), CONTENT_TYPE_LATEST)


def gate_status(loaded: LoadedReport, result: GateResult) -> HTTPStatus:
    """200 pass, 412 fail, 409 inconclusive (run longer), 503 when there is no comparison to judge."""
    if loaded.report is None:
        return HTTPStatus.SERVICE_UNAVAILABLE
    return GATE_STATUS[result.verdict]


def policy_path(policies_dir: Path, name: str) -> Path:
    """policies_dir/NAME.toml; a name that is not a plain file name (a path, '..') is a ValueError."""
    stem = name.removesuffix(".toml")
    if not POLICY_NAME.fullmatch(stem) or ".." in stem:
        raise ValueError(f"policy name {name[:80]!r}: use the name of a file in the policies folder, e.g. default")
    root = policies_dir.resolve()
    path = root / f"{stem}.toml"
    if not _inside(root, path):  # a symlink that leads out of the folder
        raise ValueError(f"policy {stem} is outside the policies folder")
    if not path.is_file():
        known = sorted(file.stem for file in root.glob("*.toml") if _inside(root, file))
        raise PolicyNotFound(f"no policy {stem} in the policies folder; known: {', '.join(known) or 'none'}")
    return policies_dir / path.name  # as configured: the verdict names it without this host's absolute path


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root)


def exposition(loaded: LoadedReport) -> bytes:
    """The comparator's metrics computed from the live report, in a fresh registry per scrape.

    The counters equal the comparison's cumulative counts, so a fresh registry each time is exact.
    """
    from harness.metrics.comparator import ComparatorMetrics
    from harness.watch import unix_seconds

    registry = CollectorRegistry(auto_describe=True)
    available = Gauge("harness_serve_comparison_available", "1 when the live comparison could be read, else 0.",
                      registry=registry)
    report = loaded.report
    progress = (report or {}).get("progress") or {}
    metrics = ComparatorMetrics(list(progress.get("sides") or ("legacy", "candidate")), registry)
    available.set(0 if report is None else 1)
    if report is not None:
        metrics.restored(report["counts"])
        # The report is dated by the comparator's last checkpoint.
        metrics.checkpointed(report, progress.get("sides") or {}, unix_seconds(report.get("generated_at")) or 0.0)
    return generate_latest(registry)


def json_answer(status: HTTPStatus, body: Any) -> Answer:
    return Answer(status, (json.dumps(body, allow_nan=False, default=str) + "\n").encode())


class Handler(BaseHTTPRequestHandler):
    endpoints: Endpoints  # set on the subclass made per server
    server_version = "harness-serve"

    def do_GET(self) -> None:
        try:
            answer = self.endpoints.answer(self.path)
        except redis.RedisError as exc:  # a Redis error that live_report does not turn into a problem
            problem = redact(f"cannot read Redis at {self.endpoints.where}: {exc}")
            answer = json_answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": problem})
        self._send(answer)

    def do_POST(self) -> None:
        """Webhooks (Flagger's) POST a JSON payload: the URL says what to answer, the body is not needed."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._send(json_answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"send at most {MAX_BODY} bytes"}))
            return
        self.rfile.read(length)
        self.do_GET()

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_server(endpoints: Endpoints, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """Bind (port 0: any free port); raises OSError when the address cannot be bound."""
    # A `_created` series per counter would show a fresh registry's creation time: a reset at every scrape.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    handler = type("BoundHandler", (Handler,), {"endpoints": endpoints})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a slow client never keeps the process from exiting
    return server


def serve_until_stopped(server: ThreadingHTTPServer, stop: threading.Event) -> None:
    """Serve until `stop` is set (by a signal handler); then close the socket."""
    def shut_down_when_told() -> None:
        stop.wait()
        server.shutdown()

    threading.Thread(target=shut_down_when_told, name="serve-stop", daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
