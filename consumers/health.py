"""A worker's HTTP endpoint (SWITCHBOARD_METRICS_PORT): Prometheus metrics, and probes.

`/healthz` (liveness) fails once the event loop has stopped running: a worker stuck there
keeps its partitions yet handles nothing, and only a restart helps. `/readyz` says whether the
worker is consuming (WorkerRuntime.problem: also whether Kafka answers it); both answer as
ingest's do (switchboard.probes), and so do refusals: any other path is a 404, a method but GET
or HEAD a 405, with ingest's JSON error body. Served from a thread, so a busy loop never delays
a scrape or a probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from prometheus_client import make_wsgi_app

from consumers.worker_metrics import exported_registry
from switchboard.probes import HEALTHZ, METRICS, PROBE_METHODS, READYZ, http_error, probe_answer
from switchboard.serving import ThreadedWSGI, serve_wsgi_threads

STALE_AFTER_S = 30.0


class WorkerHealth:
    """What the probes report: the loop's last tick and the running worker's own view."""

    def __init__(self, stale_after_s: float = STALE_AFTER_S) -> None:
        self.stale_after_s = stale_after_s
        self.last_tick = time.monotonic()
        self.readiness: Callable[[], str | None] = lambda: "starting"

    async def tick(self) -> None:
        while True:
            self.last_tick = time.monotonic()
            await asyncio.sleep(1.0)

    def liveness_problem(self) -> str | None:
        idle_s = time.monotonic() - self.last_tick
        if idle_s > self.stale_after_s:
            return f"the event loop has not run for {idle_s:.0f}s"
        return None


def serve_worker_http(health: WorkerHealth, host: str, port: int) -> ThreadedWSGI:
    """Start the endpoint in daemon threads, on the addresses `serve` would listen on for
    the same SWITCHBOARD_HTTP_HOST (IPv6 `::` too; each address of a name): OSError if one
    cannot be had."""
    metrics = make_wsgi_app(exported_registry())
    # readiness is looked up per request: the running worker replaces it once started.
    probes: dict[str, Callable[[], str | None]] = {
        HEALTHZ: health.liveness_problem, READYZ: lambda: health.readiness()}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path != METRICS and path not in probes:
            return _json(start_response, 404, http_error(404), method)
        if method not in PROBE_METHODS:
            return _json(start_response, 405, http_error(405), method,
                         [("Allow", ", ".join(PROBE_METHODS))])
        if path == METRICS:  # prometheus-client answers GET only: HEAD is a GET without body
            body: list[bytes] = metrics({**environ, "REQUEST_METHOD": "GET"}, start_response)
            return [] if method == "HEAD" else body
        status, answer = probe_answer(path, probes[path]())
        return _json(start_response, status, answer, method)

    return serve_wsgi_threads(app, host, port, "worker-http")


def _json(start_response: Callable[..., Any], status: int, body: dict[str, str], method: str,
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = orjson.dumps(body)
    start_response(f"{status} {HTTPStatus(status).phrase}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                    *(headers or [])])
    return [] if method == "HEAD" else [data]
