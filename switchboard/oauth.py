"""Kafka's SASL/OAUTHBEARER login: access tokens from an OAuth 2 token endpoint.

Clusters that log clients in with OAuth (Confluent Cloud, Strimzi with Keycloak, Redpanda...)
take the client credentials grant (RFC 6749 4.4): a client id and secret are exchanged for a
short-lived token, which each connection presents. aiokafka asks for a token whenever it opens
a connection, so one token is reused until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiokafka.conn
import httpx
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

from switchboard.logs import get_logger

log = get_logger(__name__)

# A token is replaced after this share of its lifetime: connections opened near its end
# would otherwise be refused while a new one is fetched.
REFRESH_AT = 0.8
# When the endpoint does not say how long a token lasts (expires_in is only recommended).
UNSTATED_LIFETIME_S = 60.0


class OAuthError(KafkaConnectionError):  # type: ignore[misc]
    """No token: the endpoint is unreachable, refused the client, or answered nonsense.

    A connection error to aiokafka: it logs why and retries the connection, or fails the start
    with "Unable to bootstrap", as for a broker it cannot reach."""


def _answer_refusals() -> None:
    """Make aiokafka's OAUTHBEARER login fail when the cluster refuses the token.

    A broker refuses a token with a challenge (RFC 7628 3.2.2: `{"status": "invalid_token"}`)
    and waits for the client's `%x01` before it ends the login with an error. aiokafka 0.14
    takes the challenge for success and sends its requests into the unfinished login, so a
    client with a bad token (wrong audience, issuer or key) reconnects for ever without saying
    why. Answering the challenge makes the login fail with the broker's SaslAuthenticationFailed.
    """
    authenticator: Any = aiokafka.conn.OAuthAuthenticator
    if getattr(authenticator, "answers_refusals", False):
        return
    take_step = authenticator.step

    async def step(self: Any, payload: bytes | None) -> tuple[bytes, bool] | None:
        if self._token_sent and payload and not getattr(self, "refusal_answered", False):
            self.refusal_answered = True
            log.warning("kafka refused the oauth token",
                        broker_said=payload.decode("utf-8", "replace")[:300])
            return b"\x01", True
        result: tuple[bytes, bool] | None = await take_step(self, payload)
        return result

    authenticator.step = step
    authenticator.answers_refusals = True


class ClientCredentialsToken(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, token_url: str, client_id: str, client_secret: str, *,
                 scope: str | None = None, extensions: Mapping[str, str] | None = None,
                 timeout_s: float = 10.0) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        # SASL extensions some clusters want with the token (Confluent Cloud: logicalCluster,
        # identityPoolId).
        self._extensions = dict(extensions or {})
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._renew_at = 0.0
        # One request at a time per event loop: a client opens several connections at once.
        self._fetching: dict[asyncio.AbstractEventLoop, asyncio.Task[str]] = {}
        _answer_refusals()

    def __repr__(self) -> str:
        return f"ClientCredentialsToken({self.token_url!r}, client_id={self.client_id!r})"

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        loop = asyncio.get_running_loop()
        fetching = self._fetching.get(loop)
        if fetching is None:
            fetching = self._fetching[loop] = loop.create_task(self._renew())
            fetching.add_done_callback(lambda _: self._fetching.pop(loop, None))
        return await asyncio.shield(fetching)

    def extensions(self) -> dict[str, str]:
        return dict(self._extensions)

    async def _renew(self) -> str:
        asked = time.monotonic()
        token, lifetime_s = await self._fetch()
        self._token, self._renew_at = token, asked + lifetime_s * REFRESH_AT
        # (a key named like "token" would be masked in the logs)
        log.info("kafka oauth token obtained", endpoint=self.token_url,
                 client_id=self.client_id, lifetime_s=round(lifetime_s))
        return token

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(self.token_url, data=form,
                                             auth=(self.client_id, self._client_secret),
                                             headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OAuthError(f"token endpoint {self.token_url} unreachable: "
                             f"{type(exc).__name__}") from None
        body = _json_object(response)
        if response.status_code != 200:
            # RFC 6749 5.2 names the error; the rest of a body is not ours to log.
            said = " ".join(str(body[k]) for k in ("error", "error_description") if k in body)
            raise OAuthError(f"token endpoint {self.token_url} answered "
                             f"{response.status_code}{': ' + said[:200] if said else ''}")
        token, lifetime = body.get("access_token"), body.get("expires_in", UNSTATED_LIFETIME_S)
        if not isinstance(token, str) or not token:
            raise OAuthError(f"token endpoint {self.token_url} gave no access_token")
        try:
            lifetime_s = float(lifetime)
        except (TypeError, ValueError):
            raise OAuthError(f"token endpoint {self.token_url} gave expires_in "
                             f"{str(lifetime)[:40]!r}, not a number of seconds") from None
        return token, max(lifetime_s, 1.0)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
