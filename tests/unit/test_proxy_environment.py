"""The proxy variables read as httpx reads them (switchboard.proxy): NO_PROXY=* means no proxy
at all, so a proxy variable httpx could not use refuses no start, and the sender sends nothing
through a proxy."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from consumers.outbound.base import SendError
from consumers.outbound.http_errors import post_json
from consumers.outbound.transport import ShardedTransport
from switchboard.cli import main
from switchboard.proxy import ProxySettingError, check_proxy_environment
from tests.proxies import httpx_refuses
from tests.unit.test_outbound_transport import Proxy

EXAMPLE_ACCOUNTS = Path(__file__).resolve().parents[2] / "examples" / "accounts.toml"
PASSWORD = "a-proxy-password-5"
UNUSABLE = f"ftp://sender:{PASSWORD}@proxy.invalid:21"  # no proxy scheme httpx knows


def _check_refuses() -> bool:
    try:
        check_proxy_environment()
    except ProxySettingError:
        return True
    return False


@pytest.mark.parametrize(("variable", "no_proxy", "refused"), [
    ("NO_PROXY", "*", False),
    ("no_proxy", "*", False),
    ("NO_PROXY", "localhost, * ", False),  # `*` as any one entry, spaces ignored
    ("no_proxy", "*,.internal", False),
    ("NO_PROXY", "login.example.com", True),  # httpx still makes a proxy of each variable
    ("NO_PROXY", "*.example.com", True),  # not `*` alone
    ("NO_PROXY", "", True),
])
def test_the_check_refuses_exactly_what_httpx_refuses(
        variable: str, no_proxy: str, refused: bool, no_proxies: pytest.MonkeyPatch) -> None:
    # Under NO_PROXY=* the sender refused to start on a proxy variable httpx never reads.
    no_proxies.setenv("ALL_PROXY", UNUSABLE)
    no_proxies.setenv(variable, no_proxy)
    assert httpx_refuses() is refused
    assert _check_refuses() is refused


@pytest.mark.parametrize("variable", ["NO_PROXY", "no_proxy"])
def test_the_sender_starts_under_no_proxy_star(
        variable: str, no_proxies: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Past the proxy check, it asks Kafka (nothing listens on port 1): exit 1, not 2.
    no_proxies.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    no_proxies.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    no_proxies.delenv("SWITCHBOARD_METRICS_PORT", raising=False)
    no_proxies.setenv("HTTPS_PROXY", UNUSABLE)
    no_proxies.setenv(variable, "*")
    assert main(["worker", "sender"]) == 1
    err = capsys.readouterr().err
    assert "PROXY" not in err and PASSWORD not in err
    assert "Kafka" in err


@pytest.mark.parametrize("variable", ["NO_PROXY", "no_proxy"])
async def test_under_no_proxy_star_no_send_goes_through_the_proxy(
        variable: str, no_proxies: pytest.MonkeyPatch) -> None:
    # `*` among other entries: the sender sent through the proxy, where httpx sends direct.
    async with Proxy().running() as proxy:
        no_proxies.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        no_proxies.setenv(variable, "localhost, *")
        async with httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
            with pytest.raises(SendError) as caught:  # provider.invalid resolves nowhere
                await post_json(client, "http://provider.invalid/send", {"to": "+1"},
                                headers={}, timeout_s=5)
    assert proxy.heads == []
    assert caught.value.description.endswith("(sending to http://provider.invalid:80)")
