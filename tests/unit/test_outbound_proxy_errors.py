"""A failure to connect through a proxy names the proxy, without its login: the connection that
failed was the proxy's, and the description named only the provider (the proxy was in the
start-up log alone), so an operator checked base_url instead of the proxy."""

from __future__ import annotations

import socket

import httpx
import pytest

from consumers.outbound.base import SendError
from consumers.outbound.http_errors import _Progress, destination, origin_of, post_json
from consumers.outbound.transport import ShardedTransport
from tests.unit.test_outbound_transport import PROXY_PASSWORD


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def send_failure(url: str) -> SendError:
    async with httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
        with pytest.raises(SendError) as caught:
            await post_json(client, url, {"to": "+1"}, headers={}, timeout_s=5)
    return caught.value


@pytest.mark.parametrize(("variable", "url", "origin"), [
    ("HTTPS_PROXY", "https://provider.invalid/send", "https://provider.invalid:443"),  # tunnel
    ("HTTP_PROXY", "http://provider.invalid/send", "http://provider.invalid:80"),  # forwarded
])
async def test_a_refused_connection_to_the_proxy_names_it(
        variable: str, url: str, origin: str, no_proxies: pytest.MonkeyPatch) -> None:
    port = closed_port()
    no_proxies.setenv(variable, f"http://sender:{PROXY_PASSWORD}@127.0.0.1:{port}")
    error = await send_failure(url)
    assert (error.code, error.retryable, error.maybe_sent) == ("network", True, False)
    assert error.description.startswith("network error: ConnectError")
    assert error.description.endswith(
        f"(sending to {origin} through the proxy 127.0.0.1:{port})")
    assert PROXY_PASSWORD not in error.description and "sender" not in error.description


async def test_a_direct_connection_names_the_provider_alone(
        no_proxies: pytest.MonkeyPatch) -> None:
    port = closed_port()
    no_proxies.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    no_proxies.setenv("NO_PROXY", "127.0.0.1")  # the provider is reached directly
    error = await send_failure(f"http://127.0.0.1:{port}/send")
    assert error.description.endswith(f"(sending to http://127.0.0.1:{port})")
    assert "proxy" not in error.description


@pytest.mark.parametrize("url", ["https://bücher.example/send", "https://API.example.com/send",
                                 "http://[::1]:8080/send"])
def test_a_connection_to_the_provider_itself_names_no_proxy(url: str) -> None:
    # httpcore connects to an internationalized name in its ASCII form (xn--…), which is not
    # a proxy; nor is a host written in capitals, or an IPv6 address.
    host = httpx.URL(url).raw_host.decode("ascii")
    progress = _Progress()
    progress.connected_to = (host, httpx.URL(url).port or 443)
    assert destination(url, progress) == origin_of(url)
    progress.connected_to = ("::1", 3128)
    assert destination(url, progress) == f"{origin_of(url)} through the proxy [::1]:3128"
