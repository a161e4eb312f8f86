"""`switchboard serve`: the ingest HTTP service, in one or more worker processes."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.supervisors import Multiprocess

from switchboard.cli.startup import (
    accounts_or_exit,
    closed_terminal_outputs,
    drop_terminal_outputs,
    oauth_proxy_problem,
    port_taken,
    terminal_outputs,
    unresolved_host,
)
from switchboard.serving import (
    INGEST_HTTP,
    MULTIPROCESS_DIR_ENV,
    ingest_protocol_problem,
    listen_addresses,
    shutdown_grace_s,
)
from switchboard.settings import Settings
from switchboard.stopping import stop_signals

if TYPE_CHECKING:
    from starlette.applications import Starlette

APP = "ingest.app:app_from_environment"
# What uvicorn.run exits with when the server did not start (the app failed to load, its
# startup failed): kept, as `serve` ran through uvicorn.run before.
STARTUP_FAILURE = 3


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the ingest HTTP service against an existing Kafka cluster."""
    if not settings.kafka_bootstrap_servers:
        print("error: serve needs KAFKA_BOOTSTRAP_SERVERS (`switchboard run` also starts a "
              "local Kafka)", file=sys.stderr)
        return 2
    if problem := oauth_proxy_problem(settings):  # else unready for ever, retrying Kafka
        print(problem, file=sys.stderr)
        return 2
    # Before anything imports ingest.metrics (ingest_protocol_problem does): prometheus-client
    # opens its files there at import, in this process too, and a missing one was a traceback.
    given = os.environ.get(MULTIPROCESS_DIR_ENV)
    if given and not Path(given).is_dir():
        print(f"error: {MULTIPROCESS_DIR_ENV}={given}: no such directory (create it, empty, "
              "or leave it unset for a temporary one)", file=sys.stderr)
        return 2
    if accounts_or_exit(settings, demo=False) is None:  # the factory loads them again
        return 2
    if problem := ingest_protocol_problem():
        print(f"error: {problem}", file=sys.stderr)
        return STARTUP_FAILURE
    workers = args.workers or settings.http_workers
    host, port = args.host or settings.http_host, args.port or settings.http_port
    if unresolved := unresolved_host(host, "--host" if args.host else "SWITCHBOARD_HTTP_HOST"):
        print(unresolved[1], file=sys.stderr)
        return unresolved[0]
    ports = [("ingest", "SWITCHBOARD_HTTP_PORT or --port", port)]
    if settings.metrics_port:
        ports.append(("metrics", "SWITCHBOARD_METRICS_PORT", settings.metrics_port))
    if taken := port_taken(host, ports, host_setting="SWITCHBOARD_HTTP_HOST or --host"):
        print(f"error: {taken}", file=sys.stderr)
        return 1
    with _shared_metrics(workers):
        if settings.metrics_port:
            _serve_metrics(host, settings.metrics_port)
        config = uvicorn.Config(
            APP if workers == 1 else WORKER_APP, factory=True, host=host, port=port,
            workers=workers, http=INGEST_HTTP, proxy_headers=True, log_config=None,
            access_log=False,
            timeout_graceful_shutdown=shutdown_grace_s(settings.produce_timeout_s))
        if workers > 1:
            try:
                sockets = _bind_sockets(host, port)
            except OSError as exc:  # taken since the check
                print(f"error: ingest cannot listen on {host}:{port}: {exc}", file=sys.stderr)
                return 1
            supervisor = _Supervisor(config, sockets=sockets)
            supervisor.run()
            return STARTUP_FAILURE if supervisor.failed_to_start else 0
        server = StoppingServer(config)
        try:
            server.run()
        except KeyboardInterrupt:  # Ctrl-C before the server took SIGINT over
            return 130
        return 0 if server.started else STARTUP_FAILURE


class StoppingServer(uvicorn.Server):
    """uvicorn's server, stopped cleanly (no longer accepting, in-flight requests answered,
    the app's shutdown run: ingest flushes Kafka) by each of switchboard.stopping's signals,
    and exiting 0 after; `simulate` runs on it too.

    uvicorn takes SIGINT and SIGTERM only: SIGHUP (a closed terminal or ssh session) killed
    the process, with requests in flight and records unflushed. Nor is the signal raised
    again once stopped, as uvicorn does: that made SIGTERM's clean stop exit 143.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        terminal = terminal_outputs()

        def stop(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGHUP:  # the stop's log lines would fail on the closed tty
                drop_terminal_outputs(terminal)
            self.handle_exit(signum, frame)

        previous = {signum: signal.signal(signum, stop) for signum in stop_signals()}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of `serve --workers N`, with SIGHUP as switchboard.stopping has it.

    uvicorn's own restarts every worker process on SIGHUP, and its workers die of it: a
    closed terminal sends it to them all, so their in-flight requests were cut (with
    `nohup` too: the workers did not inherit its SIG_IGN, the supervisor having a handler).
    Here it stops them as SIGTERM does (each finishing its requests, flushing Kafka), or is
    left ignored under `nohup`, by the workers too. Set before any worker is started."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        hang_up_stops = signal.SIGHUP in stop_signals()
        super().__init__(config, sockets)  # takes every signal it knows, SIGHUP too
        self._terminal = terminal_outputs()
        if not hang_up_stops:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # inherited by the workers

    @property
    def failed_to_start(self) -> bool:
        """Whether a worker process failed to start, which stops them all (uvicorn's supervisor
        then just returns: `serve` exited 0, and `Restart=on-failure` did nothing)."""
        return any(process.exitcode == STARTUP_FAILURE for process in self.processes)

    def handle_hup(self) -> None:
        logging.getLogger("uvicorn.error").info("Received SIGHUP, exiting.")
        drop_terminal_outputs(self._terminal)
        self.should_exit.set()


def _bind_sockets(host: str, port: int) -> list[socket.socket]:
    """The sockets the processes of `serve --workers N` share: bound where one process would
    listen (switchboard.serving.listen_addresses), not by uvicorn's Config.bind_socket, which
    binds one, the first IPv4 address of a name, and `::` on IPv4 too. OSError, none left
    open, when one cannot be had."""
    sockets: list[socket.socket] = []
    try:
        for family, address in listen_addresses(host, port):
            sockets.append(socket.create_server(address, family=family))  # IPv6 only; reuse
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    for sock in sockets:
        sock.set_inheritable(True)  # as bind_socket leaves it, for the worker processes
        where = sock.getsockname()
        url_host = f"[{where[0]}]" if sock.family == socket.AF_INET6 else where[0]
        logging.getLogger("uvicorn.error").info(
            "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", url_host, where[1])
    return sockets


WORKER_APP = f"{__name__}:worker_app"


def worker_app() -> Starlette:
    """The app of one `serve --workers N` process, which leaves SIGHUP to its supervisor: the
    supervisor stops it with SIGTERM (or, under `nohup`, runs on, SIGHUP being ignored here
    too). Called in the worker process, before it serves (uvicorn then has SIGINT and SIGTERM;
    a SIGHUP in the second it takes to get here still ends it, when nothing is in flight).

    A SIGHUP to this process alone (`kill -HUP <pid>`, a reload aimed at it) is ignored: it
    serves on, its output where it was. Dropping that output whatever the terminal, as it did,
    left it serving with its logs gone for good; stopping it would only have had the
    supervisor start another (reading the accounts again, a bad file since stopping `serve`),
    which is what SIGHUP to the supervisor, not to one of its workers, is for."""
    from ingest.app import app_from_environment

    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        terminal = terminal_outputs()

        def hung_up(signum: int, frame: FrameType | None) -> None:
            # Only what a closed terminal made unwritable: its stop's log lines would fail.
            drop_terminal_outputs(closed_terminal_outputs(terminal))

        signal.signal(signal.SIGHUP, hung_up)
    try:
        return app_from_environment()
    except Exception:
        # As uvicorn has an app it cannot import: the supervisor stops every process, and
        # `serve` exits 3. Raised, it was a process that died, started again every half
        # second with the same traceback (an accounts file edited into a bad one, say).
        logging.getLogger("uvicorn.error").exception("the app failed to load")
        sys.exit(STARTUP_FAILURE)


def _serve_metrics(host: str, port: int) -> None:
    """/metrics on a port of its own, kept off the webhook port that providers (and so the
    internet) reach; served from this process, the supervisor with `--workers N`, which sums
    its workers' counts like any of them would. On the addresses the webhook port has (each
    of a name's, `::` IPv6 only), not only the name's first (prometheus-client's own)."""
    from prometheus_client import make_wsgi_app

    from ingest.app import metrics_registry
    from switchboard.serving import serve_wsgi_threads

    serve_wsgi_threads(make_wsgi_app(metrics_registry()), host, port, "serve-metrics")


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
