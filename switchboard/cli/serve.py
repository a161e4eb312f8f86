"""`switchboard serve`: the ingest HTTP service, in one or more worker processes."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from switchboard.cli.startup import accounts_or_exit, port_taken
from switchboard.serving import MULTIPROCESS_DIR_ENV, shutdown_grace_s
from switchboard.settings import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the ingest HTTP service against an existing Kafka cluster."""
    if not settings.kafka_bootstrap_servers:
        print("error: serve needs KAFKA_BOOTSTRAP_SERVERS (`switchboard run` also starts a "
              "local Kafka)", file=sys.stderr)
        return 2
    if accounts_or_exit(settings, demo=False) is None:  # the factory loads them again
        return 2
    workers = args.workers or settings.http_workers
    given = os.environ.get(MULTIPROCESS_DIR_ENV)
    if workers > 1 and given and not Path(given).is_dir():
        print(f"error: {MULTIPROCESS_DIR_ENV}={given}: no such directory (create it, empty, "
              "or leave it unset for a temporary one)", file=sys.stderr)
        return 2
    host, port = args.host or settings.http_host, args.port or settings.http_port
    ports = [("ingest", "SWITCHBOARD_HTTP_PORT or --port", port)]
    if settings.metrics_port:
        ports.append(("metrics", "SWITCHBOARD_METRICS_PORT", settings.metrics_port))
    if taken := port_taken(host, ports, host_setting="SWITCHBOARD_HTTP_HOST or --host"):
        print(f"error: {taken}", file=sys.stderr)
        return 1
    with _shared_metrics(workers):
        if settings.metrics_port:
            _serve_metrics(host, settings.metrics_port)
        uvicorn.run("ingest.app:app_from_environment", factory=True, host=host,
                    port=port, workers=workers, proxy_headers=True,
                    timeout_graceful_shutdown=shutdown_grace_s(settings.produce_timeout_s),
                    log_config=None, access_log=False)
    return 0


def _serve_metrics(host: str, port: int) -> None:
    """/metrics on a port of its own, kept off the webhook port that providers (and so the
    internet) reach; served from this process, the supervisor with `--workers N`, which sums
    its workers' counts like any of them would."""
    from prometheus_client import start_http_server

    from ingest.app import metrics_registry

    start_http_server(port, addr=host, registry=metrics_registry())


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """Worker processes of one `serve` sum their metrics, and answer /readyz for each other,
    through a directory (set before they start: prometheus-client reads it at import)."""
    from ingest.siblings import write_process_count

    if workers < 2:
        yield
        return
    if given := os.environ.get(MULTIPROCESS_DIR_ENV):
        write_process_count(Path(given), workers)
        yield
        return
    with tempfile.TemporaryDirectory(prefix="switchboard-metrics-") as directory:
        os.environ[MULTIPROCESS_DIR_ENV] = directory
        write_process_count(Path(directory), workers)
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR_ENV]
