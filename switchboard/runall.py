"""Everything in one process for `switchboard run`: ingest, simulator and workers.

For a laptop or a demo. In production each piece runs as its own process (`serve`,
`worker NAME`, several of each) and they meet only in Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from starlette.applications import Starlette

from switchboard import heap
from switchboard.accounts import Accounts
from switchboard.serving import INGEST_HTTP, EmbeddedServer, shutdown_grace_s
from switchboard.settings import Settings
from switchboard.stopping import stop_signals

if TYPE_CHECKING:
    from consumers.runtime import WorkerRuntime


def _server(app: Starlette, host: str, port: int, grace_s: int,
            http: str = "auto") -> EmbeddedServer:
    # workers=1: left unset, uvicorn reads WEB_CONCURRENCY (set for another app, `auto`: a
    # traceback at start); these servers run in this process, one each.
    return EmbeddedServer(uvicorn.Config(app, host=host, port=port, http=http, workers=1,
                                         log_config=None, access_log=False,
                                         timeout_graceful_shutdown=grace_s))


async def _all_started(parts: Sequence[Callable[[], bool]],
                       tasks: Sequence[asyncio.Task[Any]]) -> bool:
    """Every part started, e.g. workers consuming: a bot starts at the newest message, so
    one sent before it has its partitions would go unanswered. Bounded (then True: slow, not
    failed). False once a task has ended (a part that failed to start, or Ctrl-C): run_all
    reports that, and nobody should be told where to send requests."""
    for _ in range(1200):
        if any(t.done() for t in tasks):
            return False
        if all(started() for started in parts):
            return True
        await asyncio.sleep(0.05)
    return True


def _reload(runtimes: Sequence[WorkerRuntime]) -> None:
    for runtime in runtimes:
        if runtime.on_hang_up is not None:
            runtime.on_hang_up()


async def _until(gone: Callable[[], bool], stopping: asyncio.Event) -> None:
    # Polled: a child's exit has no event to await here that would not hold a thread.
    while True:
        await asyncio.sleep(1)
        if gone():
            stopping.set()
            return


async def run_all(settings: Settings, accounts: Accounts, *, workers: Sequence[str],
                  simulator: bool, on_ready: Callable[[], None] | None = None,
                  gone: Callable[[], bool] | None = None) -> None:
    """Run until SIGINT/SIGTERM, or until `gone()` (checked every second: what everything
    needs and run_all does not own, `run`'s broker). `on_ready` is called once everything has
    started (not before: it tells people where to send requests)."""
    from consumers.workers import WORKERS
    from ingest.app import create_app
    from simulator.app import create_simulator_app

    grace_s = shutdown_grace_s(settings.produce_timeout_s)
    ingest = create_app(settings, accounts)
    servers = [_server(ingest, settings.http_host, settings.http_port, grace_s, INGEST_HTTP)]
    if simulator:
        simulator_app = create_simulator_app(
            accounts, settings.ingest_url, webhook_queue=settings.simulator_webhook_queue)
        servers.append(_server(simulator_app,
                               settings.http_host, settings.simulator_port, grace_s))
    loop = asyncio.get_running_loop()
    # SIGHUP too (its terminal was closed: `run` would stay behind holding its broker and
    # ports): the bots' rules reload here when the file changes.
    signals = stop_signals()
    async with contextlib.AsyncExitStack() as exits:
        # Last on the way out, once the workers have stopped (a second Ctrl-C before changes
        # nothing): a loop that runs on (a test session's) must not keep Ctrl-C for itself.
        for signum in signals:
            exits.callback(loop.remove_signal_handler, signum)
        runtimes = [await exits.enter_async_context(WORKERS[name](settings, accounts))
                    for name in workers]
        heap.settle()
        stopping = asyncio.Event()
        for signum in signals:
            loop.add_signal_handler(signum, stopping.set)
        if signal.SIGHUP not in signals:  # under `nohup`: the bots reload their rules on it
            loop.add_signal_handler(signal.SIGHUP, _reload, runtimes)
            exits.callback(signal.signal, signal.SIGHUP, signal.SIG_IGN)
            exits.callback(loop.remove_signal_handler, signal.SIGHUP)
        serving = []
        for name, server in zip(("ingest", "simulator"), servers, strict=False):
            # Both servers are uvicorn: tag their log lines, or "Application startup complete"
            # twice says nothing about which. Tasks keep the context they were created in.
            with structlog.contextvars.bound_contextvars(service=name):
                serving.append(asyncio.create_task(server.serve()))
        working = [asyncio.create_task(runtime.run()) for runtime in runtimes]
        tasks = [*serving, *working]
        waiter = asyncio.create_task(stopping.wait())
        if gone is not None:
            watcher = asyncio.create_task(_until(gone, stopping))
            exits.callback(watcher.cancel)
        if on_ready is not None:
            parts = [lambda: ingest.state.producer.started,
                     *(lambda s=server: bool(s.started) for server in servers),
                     *(runtime.ready.is_set for runtime in runtimes)]
            if await _all_started(parts, [*tasks, waiter]):
                on_ready()
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        # Stop the consumers of work first, then the HTTP side, so nothing is cut mid-way:
        # only once they are done (a send still at the simulator, its report coming back to
        # ingest) do the servers stop taking requests.
        for runtime in runtimes:
            runtime.stop()
        if working:
            await asyncio.wait(working)
        for server in servers:
            server.should_exit = True
        waiter.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                raise result
