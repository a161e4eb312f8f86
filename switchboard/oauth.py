"""Kafka's SASL/OAUTHBEARER login: access tokens from an OAuth 2 token endpoint.

Clusters that log clients in with OAuth (Confluent Cloud, Strimzi with Keycloak, Redpanda...)
take the client credentials grant (RFC 6749 4.4): a client id and secret are exchanged for a
short-lived token, which each new connection presents. aiokafka asks for a token whenever it
opens a connection (every 100 ms while a broker is away), so one token is reused until it is
due for renewal, and failures wait before the endpoint is asked again.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.request import getproxies

import aiokafka.conn
import httpx
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

from switchboard.logs import get_logger, replace_secret
from switchboard.proxy import ProxySettingError, proxy_for, proxy_urls

log = get_logger(__name__)

# A token is renewed after this share of its lifetime, when a connection opens: if renewal
# fails, the old token is still used until shortly before it expires.
REFRESH_AT = 0.8
EXPIRY_MARGIN_S = 5.0
# When the endpoint does not say how long a token lasts (expires_in is only recommended).
UNSTATED_LIFETIME_S = 60.0
# After a failure (no token, or the cluster refused it), as Kafka's own client backs off.
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class OAuthError(KafkaConnectionError):  # type: ignore[misc]
    """No token: the endpoint is unreachable, refused the client, or answered nonsense.

    A connection error to aiokafka: it logs why and retries the connection, or fails the start
    with "Unable to bootstrap", as for a broker it cannot reach."""


class ClientCredentialsToken(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, token_url: str, client_id: str, client_secret: str, *,
                 scope: str | None = None, extensions: Mapping[str, str] | None = None,
                 cafile: str | None = None, timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token_url = token_url
        # The system's CAs unless told otherwise (httpx alone would use certifi's); an internal
        # OAuth server often has a private CA, not the brokers'.
        self._tls = ssl.create_default_context(cafile=cafile)
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        # SASL extensions some clusters want with the token (Confluent Cloud: logicalCluster,
        # identityPoolId).
        self._extensions = dict(extensions or {})
        self.timeout_s = timeout_s
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0  # on the clock
        self._expires_at = 0.0
        self._failure: OAuthError | None = None
        self._retry_at = 0.0
        self._backoff_s = FIRST_BACKOFF_S
        # One request at a time per event loop: a client opens several connections at once.
        self._fetching: dict[asyncio.AbstractEventLoop, asyncio.Task[str]] = {}
        _answer_refusals()

    def __repr__(self) -> str:
        return f"ClientCredentialsToken({self.token_url!r}, client_id={self.client_id!r})"

    async def token(self) -> str:
        now = self._clock()
        if self._token is not None and now < self._renew_at:
            return self._token
        if now < self._retry_at:
            return self._still_valid(self._failure)
        loop = asyncio.get_running_loop()
        fetching = self._fetching.get(loop)
        if fetching is None:
            fetching = self._fetching[loop] = loop.create_task(self._renew())
            fetching.add_done_callback(lambda done: self._fetched(loop, done))
        try:
            return await asyncio.shield(fetching)
        except OAuthError as exc:
            return self._still_valid(exc)

    def extensions(self) -> dict[str, str]:
        return dict(self._extensions)

    def refused(self, said: str) -> None:
        """The cluster refused the token: get another, but not at every reconnect."""
        self._token = None
        self._failed(OAuthError(f"kafka refused the oauth token: {said}"))

    def accepted(self) -> None:
        self._backoff_s = FIRST_BACKOFF_S

    def _fetched(self, loop: asyncio.AbstractEventLoop, done: asyncio.Task[str]) -> None:
        self._fetching.pop(loop, None)
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have stopped waiting

    def _still_valid(self, failure: OAuthError | None) -> str:
        if self._token is not None and self._clock() < self._expires_at - EXPIRY_MARGIN_S:
            return self._token
        raise failure or OAuthError(f"no token from {self.token_url} yet")

    def _failed(self, failure: OAuthError) -> None:
        self._failure = failure
        self._retry_at = self._clock() + self._backoff_s
        log.warning("kafka oauth token unusable", error=failure.args[0],
                    retry_in_s=self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)

    async def _renew(self) -> str:
        asked = self._clock()
        try:
            async with asyncio.timeout(self.timeout_s):  # httpx's applies to each read
                token, lifetime_s = await self._fetch()
        except TimeoutError:
            failure = OAuthError(f"token endpoint {self.token_url} gave no token within "
                                 f"{self.timeout_s:.0f}s")
            self._failed(failure)
            raise failure from None
        except OAuthError as exc:
            self._failed(exc)
            raise
        # Masked in every line from now on (no setting holds it, and only a JWT is masked by its
        # shape), in place of the token it renews.
        replace_secret(f"kafka oauth token from {self.token_url} for {self.client_id}", token)
        self._token, self._failure, self._retry_at = token, None, 0.0
        self._renew_at = asked + lifetime_s * REFRESH_AT
        self._expires_at = asked + lifetime_s
        # (a key named like "token" would be masked in the logs)
        log.info("kafka oauth token obtained", endpoint=self.token_url,
                 client_id=self.client_id, lifetime_s=round(lifetime_s))
        return token

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        # The proxy chosen here, as the sender chooses (httpx's own reading of the variables
        # sent a token endpoint on 127.0.0.1, a local Keycloak, to the proxy, which reaches
        # its own machine); trust_env=False: httpx reads no proxy variable itself.
        client = httpx.AsyncClient(timeout=self.timeout_s, verify=self._tls,
                                   proxy=self._proxy(), trust_env=False)
        try:
            async with client:
                response = await client.post(self.token_url, data=form,
                                             auth=(self.client_id, self._client_secret),
                                             headers={"accept": "application/json"})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise OAuthError(f"token endpoint {self.token_url} unreachable: "
                             f"{type(exc).__name__}: {exc}") from None
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
            lifetime_s = math.nan
        if not math.isfinite(lifetime_s):
            raise OAuthError(f"token endpoint {self.token_url} gave expires_in "
                             f"{str(lifetime)[:40]!r}, not a number of seconds")
        return token, max(lifetime_s, 1.0)

    def _proxy(self) -> str | None:
        """The proxy of the environment to ask the token endpoint through, read at each request
        (a variable fixed is used at the next try): none to loopback or a host NO_PROXY names
        (switchboard.proxy, the sender's rules)."""
        try:
            return proxy_for(proxy_urls(getproxies()), httpx.URL(self.token_url))
        except ProxySettingError as exc:
            # One httpx cannot use (ftp://, SOCKS without socksio) was a ValueError out of
            # aiokafka's connection code: a traceback at a start, a dead background task
            # later. The start checks it first (cli.startup.oauth_proxy_problem); this is what
            # a process not started so sees.
            raise OAuthError(f"token endpoint {self.token_url} not asked: {exc}") from None
        except httpx.InvalidURL as exc:
            raise OAuthError(f"token endpoint {self.token_url} unreachable: "
                             f"{type(exc).__name__}: {exc}") from None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class _AnsweringAuthenticator(aiokafka.conn.OAuthAuthenticator):  # type: ignore[misc]
    """aiokafka's OAUTHBEARER login, made to fail when the cluster refuses the token.

    A broker refuses a token with a challenge (RFC 7628 3.2.2: `{"status": "invalid_token"}`)
    and waits for the client's `%x01` before it ends the login with an error. aiokafka 0.14
    takes the challenge for success and sends its requests into the unfinished login, so a
    client with a bad token (wrong audience, issuer or key) reconnects for ever without saying
    why. Answered, the login fails with the broker's SaslAuthenticationFailed.
    """

    _answered = False

    async def step(self, payload: bytes | None) -> tuple[bytes, bool] | None:
        source = self._sasl_oauth_token_provider
        if getattr(self, "_token_sent", False) and not self._answered:
            if payload:
                self._answered = True
                source.refused(payload.decode("utf-8", "replace")[:300])
                return b"\x01", True
            source.accepted()
        result: tuple[bytes, bool] | None = await super().step(payload)
        return result


def _answer_refusals() -> None:
    """Have aiokafka log in with _AnsweringAuthenticator when the token source is ours
    (aiokafka builds its authenticator itself; there is no option for another)."""
    connection: Any = aiokafka.conn.AIOKafkaConnection
    if getattr(connection, "answers_oauth_refusals", False):
        return
    build = connection.authenticator_oauth

    def authenticator_oauth(self: Any) -> Any:
        source = self._sasl_oauth_token_provider
        if isinstance(source, ClientCredentialsToken):
            return _AnsweringAuthenticator(sasl_oauth_token_provider=source)
        return build(self)

    connection.authenticator_oauth = authenticator_oauth
    connection.answers_oauth_refusals = True
