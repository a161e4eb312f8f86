"""Where a worker's probes and metrics listen for SWITCHBOARD_HTTP_HOST: where `serve` listens
for it (uvicorn binds through the loop's create_server), IPv6 `::` and a name of several
addresses too. The IPv6 ones run only where the machine has an IPv6 loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from consumers.health import WorkerHealth, serve_worker_http
from switchboard.localkafka import free_port


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


def _answers(host: str, port: int) -> bool:
    url_host = f"[{host}]" if ":" in host else host
    try:
        return httpx.get(f"http://{url_host}:{port}/healthz", timeout=10).status_code == 200
    except httpx.ConnectError:
        return False


@needs_ipv6
def test_a_worker_on_ipv6_any_answers_on_ipv6_only_as_serve_does() -> None:
    """It stopped with exit 2 (its server was IPv4 only: 'Address family for hostname not
    supported'); `serve` on `::` answers on IPv6, not on 127.0.0.1."""
    port = free_port()
    server = serve_worker_http(WorkerHealth(), "::", port)
    try:
        assert _answers("::1", port)
        assert not _answers("127.0.0.1", port)
    finally:
        server.shutdown()
        server.server_close()


@needs_ipv6
def test_a_worker_listens_on_every_address_of_its_host() -> None:
    """A host of several addresses (here every interface, IPv4 and IPv6: an empty host, as
    the loop's create_server reads it) is listened on at each, as `serve` listens; it took the
    first alone."""
    port = free_port()
    server = serve_worker_http(WorkerHealth(), "", port)
    try:
        assert _answers("127.0.0.1", port) and _answers("::1", port)
        assert len(server.addresses) == 2
    finally:
        server.shutdown()
        server.server_close()


def _bound(sockets: Any) -> set[tuple[int, str, int]]:
    """(family, address, IPV6_V6ONLY) of listening sockets."""
    return {(s.family, s.getsockname()[0],
             s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
             if s.family == socket.AF_INET6 else 0) for s in sockets}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0",
                                  pytest.param("::", marks=needs_ipv6),
                                  pytest.param("::1", marks=needs_ipv6),
                                  pytest.param("", marks=needs_ipv6)])
def test_the_addresses_are_those_the_loop_binds_for_serve(host: str) -> None:
    """uvicorn's server binds with loop.create_server(host=...): the worker's sockets match
    its (family, address, IPv6-only) for the same host, whichever it resolves to here."""
    async def served_by_the_loop() -> set[tuple[int, str, int]]:
        server = await asyncio.get_running_loop().create_server(
            asyncio.Protocol, host=host, port=free_port())
        try:
            return _bound(server.sockets)
        finally:
            server.close()
            await server.wait_closed()

    expected = asyncio.run(served_by_the_loop())
    worker = serve_worker_http(WorkerHealth(), host, free_port())
    try:
        assert _bound(server.socket for server in worker.servers) == expected
    finally:
        worker.shutdown()
        worker.server_close()


@needs_ipv6
def test_an_address_that_cannot_be_had_leaves_none_open() -> None:
    """Its IPv6 address taken, the host's IPv4 one, bound already, is closed again: OSError,
    as before, and nothing left listening."""
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            serve_worker_http(WorkerHealth(), "", port)
    with socket.create_server(("127.0.0.1", port)):  # free: no listener of ours on 0.0.0.0
        pass
