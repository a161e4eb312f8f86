"""Which way the OAUTHBEARER token requests go with proxy variables set: as the sender's
(switchboard.proxy), a token endpoint on loopback (a local Keycloak, a test IdP) directly, as
httpx alone sent it to the proxy, which reaches its own machine, not ours. A recording proxy
stand-in and real token endpoints, all on 127.0.0.1. (One elsewhere, reached only through the
proxy: tests/unit/test_readme_environment.py.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trustme

from switchboard.cli.startup import oauth_proxy_problem
from switchboard.oauth import ClientCredentialsToken
from switchboard.settings import Settings
from tests.oauth_server import Issuer, token_endpoint
from tests.unit.test_outbound_transport import Proxy

SECRET = "client-secret-for-the-proxy-tests"


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path / "jwks.json")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_a_token_endpoint_on_loopback_is_asked_directly_with_a_proxy_set(
        host: str, variable: str, issuer: Issuer, no_proxies: pytest.MonkeyPatch) -> None:
    # The proxy stand-in answered the request itself: "gave no access_token".
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint, Proxy().running() as proxy:
        no_proxies.setenv(variable, f"http://127.0.0.1:{proxy.port}")
        url = endpoint.url.replace("127.0.0.1", host)
        source = ClientCredentialsToken(url, "app", SECRET, timeout_s=5)
        assert await source.token()
    assert proxy.heads == []
    assert endpoint.requests == [{"grant_type": "client_credentials"}]


async def test_an_https_token_endpoint_on_loopback_is_asked_without_a_tunnel(
        issuer: Issuer, tmp_path: Path, no_proxies: pytest.MonkeyPatch) -> None:
    # The proxy was asked to CONNECT to 127.0.0.1: a ProxyError (this stand-in refuses
    # tunnels; a real proxy would reach its own machine).
    ca = trustme.CA()
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    async with token_endpoint(issuer, {"app": SECRET}, tls=ca) as endpoint, \
            Proxy().running() as proxy:
        no_proxies.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        source = ClientCredentialsToken(endpoint.url, "app", SECRET, cafile=str(cafile),
                                        timeout_s=5)
        assert await source.token()
    assert proxy.heads == []
    assert len(endpoint.requests) == 1


@pytest.mark.parametrize("no_proxy", ["[::1]", "localhost,fe80::/10"])
async def test_a_no_proxy_entry_httpx_cannot_read_stops_neither_start_nor_token(
        no_proxy: str, issuer: Issuer, no_proxies: pytest.MonkeyPatch) -> None:
    """httpx reads NO_PROXY for a client that reads the environment, and refused these
    entries (httpx.InvalidURL): the start said so, exit 2. The token client reads no variable
    through httpx any more; the sender's rules read NO_PROXY as urllib does, which passes
    over entries it does not match."""
    no_proxies.setenv("NO_PROXY", no_proxy)
    with pytest.raises(httpx.InvalidURL):
        httpx.AsyncClient()  # what the token client was
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1",
                        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER",
                        kafka_oauth_token_url="https://login.example.com/oauth2/token",
                        kafka_oauth_client_id="app", kafka_oauth_client_secret=SECRET)
    assert oauth_proxy_problem(settings) is None
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint:
        assert await ClientCredentialsToken(endpoint.url, "app", SECRET, timeout_s=5).token()
    assert len(endpoint.requests) == 1
