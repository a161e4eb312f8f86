"""The OAUTHBEARER token source against a token endpoint on 127.0.0.1: one request for many
connections, renewal before expiry, backoff after failures, and clear errors. The clock is the
source's own, moved by the tests."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from aiokafka.conn import OAuthAuthenticator

from switchboard import logs
from switchboard.localkafka import free_port
from switchboard.oauth import (
    FIRST_BACKOFF_S,
    ClientCredentialsToken,
    OAuthError,
    _AnsweringAuthenticator,
)
from tests.oauth_server import AUDIENCE, Issuer, token_endpoint

SECRET = "client-secret-for-the-tests"
PROXY_PASSWORD = "a-proxy-password-2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path / "jwks.json")


class OpaqueIssuer(Issuer):
    """Issues opaque tokens, as servers whose tokens the cluster introspects do: no pattern
    tells them from ordinary text."""

    def sign(self, subject: str, lifetime_s: int = 3600, audience: str = AUDIENCE) -> str:
        return f"opaque-{subject}-{uuid.uuid4().hex}"


async def test_connections_opened_together_share_one_token(issuer: Issuer) -> None:
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", SECRET, scope="kafka")
        tokens = await asyncio.gather(*(source.token() for _ in range(5)))
        again = await source.token()
    assert len(set(tokens)) == 1 and again == tokens[0]
    assert endpoint.requests == [{"grant_type": "client_credentials", "scope": "kafka"}]
    claims = jwt.decode(again, issuer.key.public_key(), algorithms=["RS256"], audience=AUDIENCE)
    assert claims["sub"] == "app"


async def test_a_token_is_renewed_after_80_percent_of_its_lifetime(issuer: Issuer) -> None:
    clock = Clock()
    async with token_endpoint(issuer, {"app": SECRET}, lifetime_s=100) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", SECRET, clock=clock)
        first = await source.token()
        clock.now += 79
        assert await source.token() == first
        assert len(endpoint.requests) == 1
        clock.now += 2
        await source.token()
    assert len(endpoint.requests) == 2
    assert endpoint.requests[0] == {"grant_type": "client_credentials"}  # no scope: none sent


async def test_a_failed_renewal_keeps_the_token_until_shortly_before_it_expires(
        issuer: Issuer) -> None:
    clock = Clock()
    async with token_endpoint(issuer, {"app": SECRET}, lifetime_s=100) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", SECRET, clock=clock)
        first = await source.token()
    clock.now += 81  # due for renewal; the endpoint is gone
    assert await source.token() == first
    clock.now += 15  # within 5 s of its end: no longer offered
    with pytest.raises(OAuthError, match="unreachable"):
        await source.token()


async def test_a_fetched_opaque_token_is_masked_and_a_renewed_one_replaces_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Only configured secrets and JWTs were masked: a library quoting an opaque token put it in
    # the log. Renewed every few minutes for months, the tokens must not pile up either: each
    # log line is checked against every one held.
    logs.configure_logging("INFO", "json")
    clock = Clock()
    tokens, held = [], []
    async with token_endpoint(OpaqueIssuer(tmp_path / "jwks.json"), {"app": SECRET},
                              lifetime_s=100) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", SECRET, clock=clock)
        for _ in range(5):
            tokens.append(await source.token())
            logging.getLogger("third.party").warning("login failed with %s", tokens[-1])
            assert logs.scrub(f"token {tokens[-1]}") == "token ***"
            held.append(len(logs._masked))
            clock.now += 81  # due for renewal
    err = capsys.readouterr().err
    assert len(set(tokens)) == 5
    assert not [token for token in tokens if token in err]
    assert err.count("login failed with ***") == 5
    assert held[1] == held[-1]  # renewals replace, they do not add


async def test_after_a_failure_the_endpoint_is_asked_again_only_after_a_backoff(
        issuer: Issuer) -> None:
    clock = Clock()
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", "wrong-" + SECRET, clock=clock)
        for _ in range(3):  # connections retried every 100 ms
            with pytest.raises(OAuthError, match="answered 401"):
                await source.token()
        assert len(endpoint.requests) == 1
        clock.now += FIRST_BACKOFF_S
        with pytest.raises(OAuthError):
            await source.token()
        assert len(endpoint.requests) == 2
        clock.now += FIRST_BACKOFF_S  # the backoff doubled
        with pytest.raises(OAuthError):
            await source.token()
        assert len(endpoint.requests) == 2


async def test_a_refused_token_is_replaced_after_a_backoff_and_a_login_resets_it(
        issuer: Issuer) -> None:
    clock = Clock()
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", SECRET, clock=clock)
        await source.token()
        source.refused('{"status":"invalid_token"}')
        with pytest.raises(OAuthError, match="kafka refused the oauth token"):
            await source.token()
        assert len(endpoint.requests) == 1
        clock.now += FIRST_BACKOFF_S
        await source.token()
        assert len(endpoint.requests) == 2
        source.accepted()  # the new one logged in: the next refusal waits the first backoff
        source.refused('{"status":"invalid_token"}')
        clock.now += FIRST_BACKOFF_S
        await source.token()
    assert len(endpoint.requests) == 3


async def test_a_refused_client_is_an_error_naming_the_endpoint_not_the_secret(
        issuer: Issuer) -> None:
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", "wrong-" + SECRET)
        with pytest.raises(OAuthError) as refused:
            await source.token()
    assert refused.value.args[0] == (f"token endpoint {endpoint.url} answered 401: invalid_client "
                                     "client authentication failed")
    assert SECRET not in str(refused.value)


async def test_an_endpoint_with_a_private_ca_is_trusted_with_its_ca_file_only(
        issuer: Issuer, tmp_path: Path) -> None:
    authority = trustme.CA()
    cafile = tmp_path / "oauth-ca.pem"
    authority.cert_pem.write_to_path(str(cafile))
    async with token_endpoint(issuer, {"app": SECRET}, tls=authority) as endpoint:
        assert endpoint.url.startswith("https://")
        trusting = ClientCredentialsToken(endpoint.url, "app", SECRET, cafile=str(cafile))
        claims = jwt.decode(await trusting.token(), issuer.key.public_key(),
                            algorithms=["RS256"], audience=AUDIENCE)
        with pytest.raises(OAuthError, match=r"unreachable: ConnectError: .*CERTIFICATE_VERIFY"):
            await ClientCredentialsToken(endpoint.url, "app", SECRET).token()
    assert claims["sub"] == "app"
    assert len(endpoint.requests) == 1


async def test_an_endpoint_that_is_not_there_is_an_error_that_says_why() -> None:
    url = f"http://127.0.0.1:{free_port()}/token"
    source = ClientCredentialsToken(url, "app", SECRET, timeout_s=2)
    with pytest.raises(OAuthError, match=f"token endpoint {url} unreachable: ConnectError: "):
        await source.token()


@pytest.mark.parametrize(("variable", "proxy", "said"), [
    ("HTTPS_PROXY", f"ftp://proxy:{PROXY_PASSWORD}@127.0.0.1:1", "Unknown scheme for proxy URL"),
    ("ALL_PROXY", "socks5://127.0.0.1:1", "the 'socksio' package is not installed"),
], ids=["unknown-scheme", "socks-without-socksio"])
async def test_a_proxy_httpx_cannot_use_is_a_token_failure_retried_later(
        variable: str, proxy: str, said: str, issuer: Issuer,
        no_proxies: pytest.MonkeyPatch) -> None:
    """It was a ValueError or ImportError out of aiokafka's connection code: a traceback at
    a start, and a background task of a running client dead. Now it fails as an unreachable
    endpoint does, and once the variable is fixed the next try after the backoff succeeds."""
    no_proxies.setitem(sys.modules, "socksio", None)  # as without httpx[socks]
    clock = Clock()
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", SECRET, clock=clock)
        no_proxies.setenv(variable, proxy)
        with pytest.raises(OAuthError) as failed:
            await source.token()
        no_proxies.delenv(variable)
        clock.now += FIRST_BACKOFF_S
        await source.token()
    error = failed.value.args[0]
    assert error.startswith(f"token endpoint {endpoint.url} not asked: {variable} (or "
                            f"{variable.lower()}) of the environment names a proxy httpx "
                            "cannot use: "), error
    assert said in error and PROXY_PASSWORD not in error
    assert len(endpoint.requests) == 1  # the second try


async def test_a_caller_that_stops_waiting_leaves_no_unretrieved_error() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        source = ClientCredentialsToken(f"http://127.0.0.1:{free_port()}/token", "app", SECRET)
        caller = asyncio.create_task(source.token())
        await asyncio.sleep(0)
        caller.cancel()
        for _ in range(100):  # bounded: the fetch fails at once (nothing listens)
            if not source._fetching:
                break
            await asyncio.sleep(0.02)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert not source._fetching
    assert reported == []


class FakeSource:
    def __init__(self) -> None:
        self.said: list[str] = []

    async def token(self) -> str:
        return "a-token"

    def refused(self, said: str) -> None:
        self.said.append(f"refused {said}")

    def accepted(self) -> None:
        self.said.append("accepted")


async def test_a_refusal_is_answered_so_the_login_fails_and_a_success_is_reported() -> None:
    refused, accepted = FakeSource(), FakeSource()
    login = _AnsweringAuthenticator(sasl_oauth_token_provider=refused)
    first = await login.step(None)
    assert first is not None and b"auth=Bearer a-token" in first[0]
    assert await login.step(b'{"status":"invalid_token"}') == (b"\x01", True)
    assert await login.step(b"anything more") is None  # the broker's error ends it
    assert refused.said == ['refused {"status":"invalid_token"}']

    login = _AnsweringAuthenticator(sasl_oauth_token_provider=accepted)
    await login.step(None)
    assert await login.step(b"") is None
    assert accepted.said == ["accepted"]


async def test_aiokafka_still_takes_a_refusal_for_success() -> None:
    """When this fails, aiokafka answers refusals itself: _AnsweringAuthenticator can go."""
    login = OAuthAuthenticator(sasl_oauth_token_provider=FakeSource())
    await login.step(None)
    assert await login.step(b'{"status":"invalid_token"}') is None
