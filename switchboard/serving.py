"""Running uvicorn inside our own event loop, next to other tasks (workers, the simulator)."""

from __future__ import annotations

import contextlib
import importlib
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

import uvicorn
from prometheus_client.exposition import ThreadingWSGIServer

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name for it
# uvicorn's `http=` for ingest: its head bounded, its refusals JSON (see ingest.protocol). By
# name, as uvicorn takes it for `serve --workers N`, whose worker processes import it.
INGEST_HTTP = "ingest.protocol:IngestProtocol"


def ingest_protocol_problem() -> str | None:
    """Why ingest's HTTP protocol cannot run on the installed uvicorn, or None. Asked before
    anything starts: `serve --workers N` met it first in each worker process, which uvicorn's
    supervisor then started again, every half second for ever, each with its traceback; `run`
    after it had started a broker."""
    import uvicorn

    try:
        importlib.import_module(INGEST_HTTP.partition(":")[0])
    except RuntimeError as exc:  # ingest.protocol's own check of uvicorn's private names
        return str(exc)
    except ImportError as exc:  # a name it imports from uvicorn, gone
        return (f"cannot load ingest's HTTP protocol (ingest.protocol) on uvicorn "
                f"{uvicorn.__version__}: {exc}. Install the one constraints.txt pins.")
    return None


def shutdown_grace_s(produce_timeout_s: float) -> int:
    """How long a stopping server waits for in-flight webhooks. They end within the produce
    timeout (2xx, or 503 so the provider retries); at uvicorn's deadline it cancels them and
    the provider gets a 500 instead."""
    return max(30, int(produce_timeout_s) + 10)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host process.

    uvicorn installs its own handlers and re-raises the signal once stopped; when several
    services share one loop, the host decides how to stop them all, in order.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen_addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, Any]]:
    """The (family, address) pairs uvicorn's server listens on for `host`: every address the
    name resolves to, once each, as asyncio's and uvloop's create_server bind them (an IPv6
    one IPv6 only, IPV6_V6ONLY, as they and socket.create_server set). socket.gaierror when
    it resolves to none."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((family, address) for family, _, _, _, address in infos))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes every few seconds would flood the log."""


class _Listener(ThreadingWSGIServer):
    """prometheus-client's threaded WSGI server, on one address of any family."""

    def __init__(self, family: socket.AddressFamily, address: Any) -> None:
        self.address_family = family  # read by TCPServer's __init__ to make the socket
        super().__init__(address, _QuietHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:  # `::` is not 0.0.0.0 too: as uvicorn
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class ThreadedWSGI:
    """A WSGI app served from daemon threads on every address of a host."""

    def __init__(self, servers: list[ThreadingWSGIServer]) -> None:
        self.servers = servers

    @property
    def addresses(self) -> list[Any]:
        return [server.server_address for server in self.servers]

    def shutdown(self) -> None:
        for server in self.servers:
            server.shutdown()

    def server_close(self) -> None:
        for server in self.servers:
            server.server_close()


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serve_wsgi_threads(app: WSGIApp, host: str, port: int, name: str) -> ThreadedWSGI:
    """Serve `app` where `serve` would serve ingest for the same host and port (see
    listen_addresses), each address from a daemon thread: a worker's probes and metrics, and
    `serve`'s metrics port. OSError (socket.gaierror for a name that does not resolve) when
    one cannot be had; none is left open then."""
    servers: list[ThreadingWSGIServer] = []
    try:
        for family, address in listen_addresses(host, port):
            servers.append(_Listener(family, address))
    except OSError:
        for server in servers:
            server.server_close()
        raise
    for server in servers:
        server.set_app(app)
        threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return ThreadedWSGI(servers)
