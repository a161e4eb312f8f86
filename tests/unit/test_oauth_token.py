"""The OAUTHBEARER token source against a token endpoint on 127.0.0.1: one request for many
connections, a new token before the old one ends, and clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jwt
import pytest

from switchboard.localkafka import free_port
from switchboard.oauth import ClientCredentialsToken, OAuthError
from tests.oauth_server import AUDIENCE, Issuer, token_endpoint

SECRET = "client-secret-for-the-tests"


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path / "jwks.json")


async def test_connections_opened_together_share_one_token(issuer: Issuer) -> None:
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", SECRET, scope="kafka")
        tokens = await asyncio.gather(*(source.token() for _ in range(5)))
        again = await source.token()
    assert len(set(tokens)) == 1 and again == tokens[0]
    assert endpoint.requests == [{"grant_type": "client_credentials", "scope": "kafka"}]
    claims = jwt.decode(again, issuer.key.public_key(), algorithms=["RS256"], audience=AUDIENCE)
    assert claims["sub"] == "app"


async def test_a_new_token_is_fetched_before_the_old_one_expires(issuer: Issuer) -> None:
    async with token_endpoint(issuer, {"app": SECRET}, lifetime_s=1) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", SECRET)
        await source.token()
        await asyncio.sleep(0.9)  # past 80 % of its second, before its end
        await source.token()
    assert len(endpoint.requests) == 2
    assert endpoint.requests[0] == {"grant_type": "client_credentials"}  # no scope: none sent


async def test_a_refused_client_is_an_error_naming_the_endpoint_not_the_secret(
        issuer: Issuer) -> None:
    async with token_endpoint(issuer, {"app": SECRET}) as endpoint:
        source = ClientCredentialsToken(endpoint.url, "app", "wrong-" + SECRET)
        with pytest.raises(OAuthError) as refused:
            await source.token()
    assert refused.value.args[0] == (f"token endpoint {endpoint.url} answered 401: invalid_client "
                                  "client authentication failed")
    assert SECRET not in str(refused.value)


async def test_an_endpoint_that_is_not_there_is_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/token"
    source = ClientCredentialsToken(url, "app", SECRET, timeout_s=2)
    with pytest.raises(OAuthError, match=f"token endpoint {url} unreachable: ConnectError"):
        await source.token()
