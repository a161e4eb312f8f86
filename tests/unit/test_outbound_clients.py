"""Outbound provider clients against a mock transport.

The shared suite runs for every provider in `switchboard.providers.PROVIDERS` from its
tests/fixtures/<provider>/outbound/account.json: success, how every failure is classified, the
rate limit. `test_case` runs each of the other files there: a command in, the exact requests
out, the receipt or the SendError (format: tests/outbound_fixtures.py). What is left in Python is
logic of its own: channel mapping, webhook URLs, token refreshes, config validation."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from consumers.handling import SLOT, Slot
from consumers.outbound import (
    OutboundClient,
    SendContext,
    SendError,
    build_client,
    infobip,
    infobip_omnichat,
    ubiqio,
)
from consumers.outbound import limits as outbound_limits
from simulator import infobip as simulated_infobip
from switchboard import logs
from switchboard.accounts import Account, parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.events import Media
from switchboard.logs import configure_logging
from switchboard.providers import PROVIDERS, provider_module
from tests.fixtures import Fixture
from tests.outbound_fixtures import (
    COMMAND,
    WEBHOOK,
    load_outbound_account,
    load_outbound_cases,
)
from tests.unit.fakes import ModuleWith

BASE = "https://provider.test"
CONTEXT = SendContext(account="acme", webhook_url=WEBHOOK)
JWT_KEY = "a-test-signing-key-that-is-long-enough-for-hs256"

Reply = Callable[[httpx.Request], httpx.Response]


def reply(status: int = 200, body: Any = None, *, text: str | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    """A fresh response per request (a Response object cannot be served twice)."""
    def make(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers=headers)
    return make


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


@dataclass
class FakeProvider:
    """Serves queued replies per path (the last one repeats), `otherwise` to other paths, and
    records every request."""

    routes: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    otherwise: Reply | None = None

    def on(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get(request.url.path)
        if not queue and self.otherwise is not None:
            return self.otherwise(request)
        if not queue:
            return httpx.Response(404, json={"error": f"no route {request.url.path}"})
        return (queue.pop(0) if len(queue) > 1 else queue[0])(request)

    def to(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def http(fake: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as client:
        yield client


def command(**fields: Any) -> OutboundCommand:
    return OutboundCommand.model_validate({**COMMAND, "created_at": datetime.now(UTC), **fields})


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def token(expires_in: float | None = 600, now: float | None = None, *,
          lifetime: float | None = None) -> str:
    """A JWT expiring `expires_in` after `now` (by the clock of whoever issued it); with its
    `iat` `lifetime` before that when given."""
    claims: dict[str, Any] = {"sub": "client"}
    if expires_in is not None:
        claims["exp"] = int((now if now is not None else time.time()) + expires_in)
        if lifetime is not None:
            claims["iat"] = int(claims["exp"] - lifetime)
    return jwt.encode(claims, JWT_KEY, algorithm="HS256")


# --- per-provider setup, from tests/fixtures/<provider>/outbound/account.json ---------------

ACCOUNTS = {provider: load_outbound_account(provider) for provider in PROVIDERS}
CASES = load_outbound_cases()


def answer(spec: dict[str, Any]) -> Reply:
    """A fixture's <reply>."""
    return reply(spec["status"], spec.get("body"), text=spec.get("text"),
                 headers=spec.get("headers"))


def send_path(provider: str) -> str:
    return ACCOUNTS[provider].send_path


def ok(provider: str) -> Reply:
    return answer(ACCOUNTS[provider].ok_reply)


def make(provider: str, fake: FakeProvider, http: httpx.AsyncClient,
         context: SendContext = CONTEXT, **overrides: Any) -> OutboundClient:
    account = ACCOUNTS[provider]
    if account.token is not None and account.token["path"] not in fake.routes:
        fake.on(account.token["path"], answer(account.token["reply"]))
    return build_client(provider, {**account.config, **overrides}, http, context)


async def send_error(client: OutboundClient, cmd: OutboundCommand) -> SendError:
    with pytest.raises(SendError) as caught:
        await client.send(cmd)
    return caught.value


# --- what every client shares -------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
async def test_success_returns_the_provider_message_id_and_uses_the_timeout(
        provider: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), ok(provider))
    receipt = await make(provider, fake, http).send(command())
    assert receipt.provider_message_id == ACCOUNTS[provider].ok_id
    sent = fake.to(send_path(provider))
    assert len(sent) == 1
    assert sent[0].method == "POST"
    assert sent[0].headers["content-type"] == "application/json"
    assert sent[0].extensions["timeout"]["read"] == 3.5


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("status", "body", "maybe_sent"), [
    (500, {"error": "boom"}, True), (502, None, True), (504, None, True),
    (503, {"requestError": {}}, False), (408, None, False)])
async def test_server_errors_are_retryable(provider: str, status: int, body: Any,
                                           maybe_sent: bool, fake: FakeProvider,
                                           http: httpx.AsyncClient) -> None:
    # A 500 or a gateway's 502/504 may come after the provider took the message: the sender
    # must not send it again, though the caller may (with a new id) once it knows.
    fake.on(send_path(provider), reply(status, body))
    error = await send_error(make(provider, fake, http), command())
    assert error.retryable
    assert error.maybe_sent is maybe_sent
    assert str(status) in error.description


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_non_json_5xx_is_retryable(provider: str, fake: FakeProvider,
                                           http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), reply(503, text="<html><body>Service Unavailable</body></html>"))
    error = await send_error(make(provider, fake, http), command())
    assert error.retryable
    assert "Service Unavailable" in error.description


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_is_retryable_after_retry_after(provider: str, fake: FakeProvider,
                                                  http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), reply(429, {"error": "slow down"}, headers={"Retry-After": "7"}))
    error = await send_error(make(provider, fake, http), command())
    assert error.retryable and error.throttled
    assert error.retry_after_s == 7


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_only_a_rate_refusal_holds_the_account(provider: str, fake: FakeProvider,
                                                     http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), reply(503, {"error": "busy"}))
    error = await send_error(make(provider, fake, http), command())
    assert error.retryable and not error.throttled


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_timeout_is_retryable(provider: str, fake: FakeProvider,
                                      http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), timeout)
    error = await send_error(make(provider, fake, http), command())
    assert (error.retryable, error.code) == (True, "timeout")
    assert error.maybe_sent  # a read timeout: the request went out


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("failure", "code", "maybe_sent"), [
    (httpx.ConnectError("connection refused"), "network", False),
    (httpx.ConnectTimeout("no answer to SYN"), "timeout", False),
    (httpx.PoolTimeout("no free connection"), "timeout", False),
    (httpx.RemoteProtocolError("server disconnected"), "network", True),
    (httpx.WriteTimeout("stalled mid-body"), "timeout", True),
])
async def test_a_network_error_is_retryable(provider: str, failure: Exception, code: str,
                                            maybe_sent: bool, fake: FakeProvider,
                                            http: httpx.AsyncClient) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure
    fake.on(send_path(provider), fail)
    error = await send_error(make(provider, fake, http), command())
    assert (error.retryable, error.code, error.maybe_sent) == (True, code, maybe_sent)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("reason", [
    "[Errno -2] Name or service not known",
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
])
async def test_a_network_error_says_why(provider: str, reason: str, fake: FakeProvider,
                                        http: httpx.AsyncClient) -> None:
    # "network error: ConnectError", at every command: a base_url's host misspelt, and a
    # proxy's certificate, read the same, and the reason was in no log line either.
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(reason)
    fake.on(send_path(provider), fail)
    error = await send_error(make(provider, fake, http), command())
    assert error.description == (f"network error: ConnectError: {reason} "
                                 f"(sending to https://provider.test:443)")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_connect_timeout_says_where(provider: str, fake: FakeProvider,
                                            http: httpx.AsyncClient) -> None:
    # A base_url's host that drops the SYN (a firewall, a wrong address) named no host either.
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no answer to SYN")
    fake.on(send_path(provider), fail)
    error = await send_error(make(provider, fake, http), command())
    assert error.description.endswith(
        "(ConnectTimeout, connecting to https://provider.test:443)")


def broken_gzip(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-encoding": "gzip"}, content=b"not gzip")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_undecodable_answer_is_a_send_error(provider: str, fake: FakeProvider,
                                                    http: httpx.AsyncClient) -> None:
    # httpx raises DecodingError, not a TransportError: it escaped the client, the handler
    # failed and was retried, and the command ended "outcome_unknown" as if the worker had
    # stopped. The whole request went out, so the provider may have taken it.
    fake.on(send_path(provider), broken_gzip)
    error = await send_error(make(provider, fake, http), command())
    assert (error.retryable, error.code, error.maybe_sent) == (True, "bad_response", True)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_validation_and_auth_errors_are_permanent(provider: str, status: int,
                                                        fake: FakeProvider,
                                                        http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), reply(status, {"message": "invalid destination"}))
    error = await send_error(make(provider, fake, http), command())
    assert not error.retryable
    assert f"HTTP {status}" in error.description


# A client with a token fetches a new one on a 401 (its own tests below).
@pytest.mark.parametrize("provider", [p for p in PROVIDERS if ACCOUNTS[p].token is None])
async def test_401_is_permanent(provider: str, fake: FakeProvider,
                                http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), reply(401, None))
    error = await send_error(make(provider, fake, http), command())
    assert not error.retryable


# Bodies that are no JSON we can read: empty, HTML, and JSON nested deeper than Python's
# parser goes (it raises RecursionError, not ValueError).
UNREADABLE_BODIES = ["", "<html><body>OK</body></html>", "[" * 100_000,
                     '{"messages": ' + "[" * 100_000]


# The providers whose documents say what every acceptance carries: Infobip's spec a `messages`
# list ("required") whose messageId is "returned in the API response", Bird's schema an `id`
# ("required"), and every Webex v1 answer, acceptance or refusal, a `response` with its `code`.
# A 2xx without it is none of theirs (a base_url pointing at another API): not an acceptance,
# but the request reached something, so not sent again either. Omnichat (a legacy page, no
# field marked required) and Ubiqio (no success body shown) document no such field.
ANSWER_KNOWN = ("infobip", "bird", "webex")
ANSWER_UNKNOWN = tuple(provider for provider in PROVIDERS if provider not in ANSWER_KNOWN)
NO_ID_BODIES = [{}, {"unexpected": [1, 2]}, [], "text", {"status": "ok", "count": 7}]


def assert_no_acceptance(error: SendError) -> None:
    assert (error.code, error.retryable, error.maybe_sent) == ("bad_response", True, True)
    assert "base_url" in error.description


@pytest.mark.parametrize("provider", ANSWER_UNKNOWN)
@pytest.mark.parametrize("body", NO_ID_BODIES)
async def test_a_2xx_without_an_id_is_accepted_without_one(provider: str, body: Any,
                                                           fake: FakeProvider,
                                                           http: httpx.AsyncClient) -> None:
    """Resending could send the message twice; the correlation id still ties the reports."""
    fake.on(send_path(provider), reply(200, body))
    receipt = await make(provider, fake, http).send(command())
    assert receipt.provider_message_id is None


@pytest.mark.parametrize("provider", ANSWER_KNOWN)
@pytest.mark.parametrize("body", NO_ID_BODIES)
async def test_a_2xx_without_what_every_acceptance_carries_is_none(
        provider: str, body: Any, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # A base_url mistyped to another JSON API had every message reported accepted (without an
    # id), and none was sent.
    fake.on(send_path(provider), reply(200, body))
    error = await send_error(make(provider, fake, http), command())
    assert_no_acceptance(error)
    assert f"{BASE}/" in error.description  # where the request went


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("text", UNREADABLE_BODIES, ids=["empty", "html", "deep", "deep-inside"])
async def test_an_unreadable_body_is_still_an_answer(provider: str, text: str,
                                                     fake: FakeProvider,
                                                     http: httpx.AsyncClient) -> None:
    # An error escaping the client failed the handler; its retry found the command pending
    # and reported it outcome_unknown, although the provider had answered.
    fake.on(send_path(provider), reply(200, text=text))
    if provider in ANSWER_KNOWN:
        assert_no_acceptance(await send_error(make(provider, fake, http), command()))
    else:
        receipt = await make(provider, fake, http).send(command())
        assert receipt.provider_message_id is None
    fake.on(send_path(provider), reply(400, text=text))
    error = await send_error(make(provider, fake, http), command())
    assert (error.retryable, error.code) == (False, "400")


# Bodies labelled with a charset httpx's `response.text` raises for, whatever the body: UTF-16
# and UTF-32 without a byte order mark (a Windows server's page), a codec of bytes (base64),
# and one Python cannot decode with replacement (idna).
MISLABELLED = [("text/html; charset=utf-16", b"<html><title>Sign in</title></html>"),
               ("text/plain; charset=utf-32", b"Service unavailable"),
               ("application/json; charset=base64", b'{"note": "bad"}'),
               ("text/plain; charset=idna", b"oops")]


def mislabelled(status: int, content: bytes, content_type: str,
                request: httpx.Request) -> httpx.Response:
    return httpx.Response(status, content=content, headers={"content-type": content_type})


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("content_type", "content"), MISLABELLED,
                         ids=["utf-16", "utf-32", "base64", "idna"])
async def test_an_answer_in_a_charset_that_cannot_be_read_is_still_an_answer(
        provider: str, content_type: str, content: bytes, fake: FakeProvider,
        http: httpx.AsyncClient) -> None:
    # Reading it raised UnicodeError, LookupError or AssertionError out of the client: the
    # sender took the provider's answer for a bug in the client.
    for status, retryable in ((400, False), (500, True), (200, True)):
        fake.on(send_path(provider), partial(mislabelled, status, content, content_type))
        try:
            await make(provider, fake, http).send(command())
        except SendError as error:
            assert error.retryable is retryable
        else:
            assert status == 200 and provider in ANSWER_UNKNOWN


# --- answers that say more about the setup than about the message -------------------------

TOKEN_PROVIDERS = [p for p in PROVIDERS if ACCOUNTS[p].token is not None]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_redirect_says_where_it_points(provider: str, status: int, fake: FakeProvider,
                                               http: httpx.AsyncClient) -> None:
    # "HTTP 301: Moved Permanently" alone left the operator guessing where base_url should
    # point. Redirects are not followed (a POST redirected may lose its body), so it fails.
    fake.on(send_path(provider), reply(status, text="", headers={
        "Location": "https://api2.provider.test/v2/send?session=abc123"}))
    error = await send_error(make(provider, fake, http), command())
    assert not error.retryable and not error.maybe_sent
    assert error.description.startswith(f"HTTP {status}")
    assert "https://api2.provider.test/v2/send" in error.description
    assert "abc123" not in error.description  # a query may carry a session or a token
    assert "base_url" in error.description


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_relative_redirect_is_given_as_a_whole_url(provider: str, fake: FakeProvider,
                                                            http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), reply(301, text="", headers={"Location": "/v2/send"}))
    error = await send_error(make(provider, fake, http), command())
    assert "https://provider.test/v2/send" in error.description


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_redirect_with_credentials_is_reported_without_them(
        provider: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    secret = f"long-enough-redirect-secret-{provider}"
    logs.register_secrets([secret])
    fake.on(send_path(provider), reply(302, text="", headers={
        "Location": f"https://user:hunter2-password@login.test/{secret}/in"}))
    error = await send_error(make(provider, fake, http), command())
    assert "hunter2-password" not in error.description
    assert secret not in error.description
    assert "login.test" in error.description


@pytest.mark.parametrize("provider", TOKEN_PROVIDERS)
async def test_a_redirected_token_request_says_where_it_points(
        provider: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    token = ACCOUNTS[provider].token or {}
    fake.on(token["path"], reply(301, text="", headers={"Location": "https://new.test/auth"}))
    error = await send_error(make(provider, fake, http), command())
    assert not error.retryable
    assert "https://new.test/auth" in error.description


LOGIN_PAGE = "\n  <!DOCTYPE html><html><head><title>Sign in</title></head><body>...</body></html>"


@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=UTF-8",
                                          "application/xhtml+xml"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_2xx_html_page_is_no_acceptance(provider: str, content_type: str,
                                                fake: FakeProvider,
                                                http: httpx.AsyncClient) -> None:
    # A base_url pointing at a website, a login page or a proxy's welcome page answers 200
    # with HTML: every message was reported accepted (without an id) and none was sent. No
    # send API answers HTML; but the request did arrive somewhere, so not sent again either.
    fake.on(send_path(provider), reply(200, text=LOGIN_PAGE,
                                       headers={"Content-Type": content_type}))
    error = await send_error(make(provider, fake, http), command())
    assert (error.code, error.retryable, error.maybe_sent) == ("bad_response", True, True)
    assert content_type.split(";")[0] in error.description
    assert "Sign in" in error.description and "base_url" in error.description


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("text", ["", "OK", "Queued"])
async def test_a_2xx_labelled_html_that_is_no_page_is_still_an_answer(
        provider: str, text: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # A framework's default content type on an API's own short answer: read as the API's
    # answer, an acceptance unless the provider's every acceptance says more (ANSWER_KNOWN).
    fake.on(send_path(provider), reply(200, text=text, headers={"Content-Type": "text/html"}))
    if provider in ANSWER_KNOWN:
        assert_no_acceptance(await send_error(make(provider, fake, http), command()))
        return
    receipt = await make(provider, fake, http).send(command())
    assert receipt.provider_message_id is None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_json_labelled_html_is_read_as_json(provider: str, fake: FakeProvider,
                                                  http: httpx.AsyncClient) -> None:
    spec = ACCOUNTS[provider].ok_reply
    fake.on(send_path(provider), reply(spec["status"], text=json.dumps(spec["body"]),
                                       headers={"Content-Type": "text/html"}))
    receipt = await make(provider, fake, http).send(command())
    assert receipt.provider_message_id == ACCOUNTS[provider].ok_id


class StoppedClock:
    """Monotonic time that moves only when the code under test sleeps, recording each sleep
    in `timeline` (with the requests the fake provider records there too). Values are exact
    in binary (1000 + n/16 s), so waiting "until a token is due" is exactly that long."""

    MAX_SLEEPS = 100  # a wait that never ends would otherwise spin here

    def __init__(self) -> None:
        self.now = 1000.0
        self.timeline: list[str | float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.timeline.append(delay)
        assert len(self.timeline) < self.MAX_SLEEPS, f"still waiting: {self.timeline[-5:]}"
        self.now += delay
        await asyncio.sleep(0)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_sends_are_rate_limited_per_account(provider: str, fake: FakeProvider,
                                                  http: httpx.AsyncClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clock = StoppedClock()
    monkeypatch.setattr(outbound_limits, "time", ModuleWith(time, monotonic=clock.monotonic))
    monkeypatch.setattr(outbound_limits, "asyncio", ModuleWith(asyncio, sleep=clock.sleep))

    def answer(request: httpx.Request) -> httpx.Response:
        clock.timeline.append("send")
        return ok(provider)(request)

    fake.on(send_path(provider), answer)
    client = make(provider, fake, http, rate_per_s=16, burst=1)
    other_account = make(provider, fake, http, rate_per_s=16, burst=1)
    for _ in range(3):
        await client.send(command())
    # The burst of 1 goes at once; each later send waits for its token: 1/16 s at 16/s.
    assert clock.timeline == ["send", 0.0625, "send", 0.0625, "send"]
    await other_account.send(command())  # a bucket of its own, still full: no wait
    assert clock.timeline[5:] == ["send"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_uncarriable_command_is_refused_before_any_request(
        provider: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(send_path(provider), ok(provider))
    too_much = [Media(url=f"https://cdn.test/{n}.pdf") for n in range(11)]
    error = await send_error(make(provider, fake, http), command(media=too_much))
    assert (error.retryable, error.code) == (False, "unsupported_content")
    assert fake.requests == []


def secret_fields(provider: str) -> list[str]:
    config = provider_module("consumers.outbound", provider).Config
    return [name for name, info in config.model_fields.items() if info.annotation is SecretStr]


def credentials_of(request: httpx.Request) -> str:
    """The request's credentials header: "Basic <base64>", "Bearer <jwt>", "App <key>", a key."""
    return request.headers.get("authorization") or request.headers.get("key") or ""


def echo(request: httpx.Request) -> httpx.Response:
    """A provider that quotes the request's credentials back in its refusal (some echo the
    Authorization header, or the body with the key in it, in a 400 or 401)."""
    return httpx.Response(400, text=f"denied {credentials_of(request)} for "
                                    f"{request.content.decode()}")


@pytest.mark.parametrize(("provider", "path"), [
    *((p, "send") for p in PROVIDERS),
    *((p, "token") for p in PROVIDERS if ACCOUNTS[p].token is not None)])
async def test_a_refusal_that_echoes_the_credentials_is_reported_without_them(
        provider: str, path: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # The description goes into the result on Kafka (and `send --wait` prints it): only log
    # lines were masked.
    secrets = {name: f"long-enough-{name}-value-{provider}" for name in secret_fields(provider)}
    token = ACCOUNTS[provider].token
    fake.on(token["path"] if path == "token" and token else send_path(provider), echo)
    client = make(provider, fake, http, CONTEXT, **secrets)
    error = await send_error(client, command())
    credentials = credentials_of(fake.requests[-1]).split()[-1:]  # without its scheme
    assert error.description.startswith("HTTP 400")
    for secret in [*secrets.values(), *credentials]:
        assert secret not in error.description


# --- each provider's cases, from tests/fixtures/<provider>/outbound/<case>.json ------------

def as_expected(request: httpx.Request, want: dict[str, Any]) -> dict[str, Any]:
    """What a case's expected request checks of `request`: only the headers it names."""
    return {"method": request.method, "url": str(request.url),
            "headers": {name: request.headers.get(name) for name in want.get("headers", {})},
            "json": body_of(request)}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_case(case: Fixture, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    spec = case.spec
    assert ("receipt" in spec) != ("error" in spec), "a case expects a receipt or an error"
    fake.otherwise = answer(spec.get("reply", ACCOUNTS[case.provider].ok_reply))
    context = SendContext(account="acme", **{"webhook_url": WEBHOOK, **spec.get("context", {})})
    client = make(case.provider, fake, http, context, **spec.get("config", {}))
    cmd = command(**spec.get("command", {}))
    if "error" in spec:
        error = await send_error(client, cmd)
        want = dict(spec["error"])
        fragment = want.pop("description_has", "")
        assert {key: getattr(error, key) for key in want} == want
        assert fragment in error.description
    else:
        receipt = await client.send(cmd)
        assert {key: getattr(receipt, key) for key in spec["receipt"]} == spec["receipt"]
    if "requests" in spec:
        assert len(fake.requests) == len(spec["requests"])
        for request, want in zip(fake.requests, spec["requests"], strict=True):
            assert as_expected(request, want) == want


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_has_a_request_case_and_an_error_reply_case(provider: str) -> None:
    specs = [case.spec for case in CASES if case.provider == provider]
    assert any(spec.get("requests") and "receipt" in spec for spec in specs), "no request case"
    assert any("reply" in spec and "error" in spec for spec in specs), "no error-reply case"


# --- logic of its own ---------------------------------------------------------------------

def _account(scheme: str, **auth: Any) -> Account:
    [account] = parse_accounts({"accounts": {"acme shop": {
        "provider": "ubiqio", "auth": {"scheme": scheme, "secrets": ["t0k3n&secret"], **auth},
        "outbound": {}}}})
    return account


def test_a_per_message_webhook_url_carries_the_accounts_token() -> None:
    # Providers add no credentials to a URL given with a message: ingest must find the token.
    context = SendContext.for_account(_account("token", query_param="key"),
                                      "https://hooks.test/")
    plain = "https://hooks.test/webhooks/ubiqio/acme%20shop"
    assert context.webhook_url == f"{plain}?key=t0k3n%26secret"
    assert context.plain_webhook_url == plain


@pytest.mark.parametrize("auth", [{"scheme": "basic", "username": "u"},
                                  {"scheme": "hub-signature"}])
def test_no_per_message_webhook_url_when_a_url_cannot_authenticate(auth: dict[str, Any]) -> None:
    # It would be refused (401), and it may override the provider-side webhook that can.
    scheme = auth.pop("scheme")
    context = SendContext.for_account(_account(scheme, **auth), "https://hooks.test")
    assert context.webhook_url is None
    assert context.plain_webhook_url == "https://hooks.test/webhooks/ubiqio/acme%20shop"
    assert SendContext.for_account(_account(scheme, **auth), None).plain_webhook_url is None


@pytest.mark.parametrize(("requested", "configured", "expected"), [
    ("viber", "sms", "VIBER_BM"), ("instagram", "sms", "INSTAGRAM_DM"), ("line", "sms", "LINE_ON"),
    ("apple", "sms", "APPLE_MB"), ("messenger", "sms", "MESSENGER"), (None, "whatsapp", "WHATSAPP"),
    ("viber", "viber_bot", "VIBER_BOT"), (None, "viber_bot", "VIBER_BOT"), ("rcs", "sms", "RCS"),
])
def test_infobip_channel_names_are_infobips(requested: str | None, configured: str,
                                            expected: str) -> None:
    # Replies copy the inbound event's channel, which the schema spells `viber`, `line`...
    channel = infobip.infobip_channel(requested, configured)
    assert channel == expected and channel in simulated_infobip.CHANNELS


@pytest.mark.parametrize(("provider", "body"), [
    ("infobip", {"messages": [{"messageId": "ib-9", "status": {
        "groupName": "REJECTED", "name": "{name}", "description": "Not enough credits"}}]}),
    ("infobip-omnichat", {"messageId": "ib-9", "status": {
        "groupName": "REJECTED", "name": "{name}", "description": "Not enough credits"}}),
])
@pytest.mark.parametrize(("name", "permanent"), [
    ("REJECTED_NOT_ENOUGH_CREDITS", False), ("REJECTED_PREPAID_PACKAGE_EXPIRED", False),
    ("REJECTED_DESTINATION", True)])
async def test_infobip_credit_spent_is_not_retried_nor_permanent(
        provider: str, body: dict[str, Any], name: str, permanent: bool, fake: FakeProvider,
        http: httpx.AsyncClient) -> None:
    # The account's credit, not the message: sent again once it is topped up, it goes out. A
    # permanent result told the producer no resend could succeed.
    fake.on(send_path(provider), reply(200, json.loads(json.dumps(body).replace("{name}", name))))
    error = await send_error(make(provider, fake, http), command())
    assert (error.code, error.retryable, error.maybe_sent, error.permanent) == (
        name, False, False, permanent)
    assert ("topped up" in error.description) is not permanent


def test_omnichat_refuses_a_channel_label_longer_than_any_channel() -> None:
    # Read as events read labels, a label that long is refused there (NormalizeError): here it
    # is no channel of the integration's, not a failure the client does not expect.
    with pytest.raises(SendError) as caught:
        infobip_omnichat.check_channel("messenger" * 200, "FACEBOOK")
    assert caught.value.code == "unsupported_content" and not caught.value.called
    assert len(caught.value.description) < 300


# --- Ubiqio tokens -----------------------------------------------------------------------

UBIQIO = send_path("ubiqio")
TOKEN_PATH = (ACCOUNTS["ubiqio"].token or {})["path"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def ubiqio_client(http: httpx.AsyncClient, clock: Clock, **overrides: Any) -> ubiqio.Client:
    config = ubiqio.Config.model_validate({**ACCOUNTS["ubiqio"].config, **overrides})
    return ubiqio.Client(config, http, CONTEXT, clock=clock)


async def test_ubiqio_token_is_cached(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, ok("ubiqio"))
    client = make("ubiqio", fake, http)
    for _ in range(3):
        await client.send(command())
    assert len(fake.to(TOKEN_PATH)) == 1
    assert len(fake.to(UBIQIO)) == 3


async def test_ubiqio_token_is_refreshed_before_it_expires(fake: FakeProvider,
                                                           http: httpx.AsyncClient) -> None:
    clock = Clock()
    first, second = token(600, clock.now), token(1200, clock.now)
    fake.on(TOKEN_PATH, reply(200, {"token": first}), reply(200, {"token": second}))
    fake.on(UBIQIO, ok("ubiqio"))
    client = ubiqio_client(http, clock)
    await client.send(command())
    clock.now += 530  # 70 s before expiry: still good
    await client.send(command())
    clock.now += 20  # 50 s before expiry: inside the refresh margin
    await client.send(command())
    sends = [request.headers["authorization"] for request in fake.to(UBIQIO)]
    assert sends == [f"Bearer {first}", f"Bearer {first}", f"Bearer {second}"]
    assert len(fake.to(TOKEN_PATH)) == 2


async def test_ubiqio_token_without_exp_is_kept_until_a_401(fake: FakeProvider,
                                                            http: httpx.AsyncClient) -> None:
    clock = Clock()
    fake.on(TOKEN_PATH, reply(200, {"token": "opaque-token"}))
    fake.on(UBIQIO, ok("ubiqio"))
    client = ubiqio_client(http, clock)
    await client.send(command())
    clock.now += 86_400
    await client.send(command())
    assert len(fake.to(TOKEN_PATH)) == 1


async def test_ubiqio_401_fetches_a_new_token_once(fake: FakeProvider,
                                                   http: httpx.AsyncClient) -> None:
    old, new = token(600), token(900)
    fake.on(TOKEN_PATH, reply(200, {"token": old}), reply(200, {"token": new}))
    fake.on(UBIQIO, reply(401, {"error": "token revoked"}), ok("ubiqio"))
    receipt = await make("ubiqio", fake, http).send(command())
    assert receipt.provider_message_id == "ub-1"
    sends = [request.headers["authorization"] for request in fake.to(UBIQIO)]
    assert sends == [f"Bearer {old}", f"Bearer {new}"]


async def test_ubiqio_401_in_a_2xx_body_fetches_a_new_token_once(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # Read as the HTTP 401 it says: a token without `exp` is renewed on a 401 only, so every
    # send after it expired failed (a refusal each) for the life of the sender.
    fake.on(TOKEN_PATH, reply(200, {"token": "opaque-1"}), reply(200, {"token": "opaque-2"}))
    fake.on(UBIQIO, reply(200, {"statusCode": 401, "message": "Unauthorized"}), ok("ubiqio"))
    receipt = await make("ubiqio", fake, http).send(command())
    assert receipt.provider_message_id == "ub-1"
    sends = [request.headers["authorization"] for request in fake.to(UBIQIO)]
    assert sends == ["Bearer opaque-1", "Bearer opaque-2"]


async def test_ubiqio_401_in_a_2xx_body_with_an_id_is_not_sent_again(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, reply(200, {"status": 401, "messageId": "m-9", "message": "Unauthorized"}))
    error = await send_error(make("ubiqio", fake, http), command())
    assert (error.maybe_sent, len(fake.to(UBIQIO)), len(fake.to(TOKEN_PATH))) == (True, 1, 1)


async def test_a_fetched_ubiqio_token_is_masked_and_a_renewed_one_replaces_it(
        fake: FakeProvider, http: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]) -> None:
    # Only configured secrets and JWTs were masked: a token that is no JWT, quoted back with the
    # Authorization header, went into the result on Kafka and into log lines. Renewed for the
    # life of the process, the tokens must not pile up either.
    configure_logging("INFO", "json")
    tokens = [f"opaque-ubiqio-token-{n}" for n in range(6)]
    fake.on(TOKEN_PATH, *(reply(200, {"token": value}) for value in tokens))
    fake.on(UBIQIO, *[reply(401, {"error": "token expired"}), echo] * 5)
    client = make("ubiqio", fake, http)
    held = []
    for n in range(1, 6):  # each send: 401, a new token, a refusal quoting it
        error = await send_error(client, command())
        assert credentials_of(fake.requests[-1]) == f"Bearer {tokens[n]}"
        assert error.description.startswith("HTTP 400: denied Bearer ***")
        logging.getLogger("httpx").warning("sent %s", credentials_of(fake.requests[-1]))
        held.append(len(logs._masked))
    err = capsys.readouterr().err
    assert not [value for value in tokens if value in err]
    assert held[0] == held[-1]  # renewals replace, they do not add


async def test_ubiqio_second_401_is_permanent(fake: FakeProvider,
                                              http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, reply(401, {"error": "Bearer token was missing or invalid"}))
    error = await send_error(make("ubiqio", fake, http), command())
    assert not error.retryable
    assert error.description == "HTTP 401: Bearer token was missing or invalid"
    assert len(fake.to(TOKEN_PATH)) == 2
    assert len(fake.to(UBIQIO)) == 2


async def test_ubiqio_concurrent_sends_share_one_token_request(fake: FakeProvider,
                                                               http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, ok("ubiqio"))
    client = make("ubiqio", fake, http)
    await asyncio.gather(*(client.send(command(id=f"cmd-{n}")) for n in range(5)))
    assert len(fake.to(TOKEN_PATH)) == 1


async def test_ubiqio_sends_waiting_for_a_token_request_leave_their_slots(
        fake: FakeProvider) -> None:
    # Sends waiting for another's token request kept their concurrency slots: one account's
    # token request left unanswered took every slot, for up to timeout_s, from every account.
    answered = asyncio.Event()

    async def slow_token(request: httpx.Request) -> httpx.Response:
        await answered.wait()
        return httpx.Response(200, json={"token": token()})

    fake.on(UBIQIO, ok("ubiqio"))
    slots = asyncio.Semaphore(2)

    async def in_a_slot(work: Callable[[], Awaitable[Any]]) -> Any:
        slot = Slot(slots)
        SLOT.set(slot)  # as the runtime sets it, per record's task
        await slot.take()
        try:
            return await work()
        finally:
            slot.give()

    async def route(request: httpx.Request) -> httpx.Response:
        return await slow_token(request) if request.url.path == TOKEN_PATH else fake.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(route)) as http:
        client = make("ubiqio", fake, http)
        sends = [asyncio.create_task(in_a_slot(partial(client.send, command(id=f"cmd-{n}"))))
                 for n in range(2)]
        await asyncio.sleep(0.05)  # one asks for the token, the other waits for it
        await asyncio.wait_for(in_a_slot(partial(asyncio.sleep, 0)), 1)  # another account's
        answered.set()
        receipts = await asyncio.wait_for(asyncio.gather(*sends), 1)
    assert [receipt.provider_message_id for receipt in receipts] == ["ub-1", "ub-1"]
    assert slots._value == 2  # every slot given back once


@pytest.mark.parametrize(("status", "body", "retryable"), [
    (401, {"error": "Check your account key and secret"}, False),
    (400, {"error": "Check your account key and secret"}, False),
    (500, None, True),
    (200, {"nothing": "here"}, False),
    # Not a Bearer token (RFC 6750's token68): httpx cannot encode the first into a header
    # (an error that escaped the client), and the second fails once the request is being
    # written, read as "may have been sent" although no send had left.
    (200, {"token": "eyJhbGciOi.tök.sig"}, False),
    (200, {"token": "eyJhbGciOi.e30\r\nX-Injected: 1"}, False),
])
async def test_ubiqio_token_failures(status: int, body: Any, retryable: bool,
                                     fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(TOKEN_PATH, reply(status, body))
    fake.on(UBIQIO, ok("ubiqio"))
    error = await send_error(make("ubiqio", fake, http), command())
    assert error.retryable is retryable
    assert not error.maybe_sent
    assert fake.to(UBIQIO) == []
    if status == 401:
        assert "Check your account key and secret" in error.description


@pytest.mark.parametrize(("answer", "code"), [(timeout, "timeout"),
                                              (broken_gzip, "bad_response")])
async def test_a_ubiqio_token_request_without_an_answer_is_retryable(
        answer: Reply, code: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(TOKEN_PATH, answer)
    error = await send_error(make("ubiqio", fake, http), command())
    assert (error.retryable, error.code) == (True, code)
    assert not error.maybe_sent  # asking for a token again sends no message
    assert fake.to(UBIQIO) == []


@pytest.mark.parametrize(("answer", "code", "retryable"), [
    (reply(401, {"error": "Check your account key and secret"}), "401", False),
    (timeout, "timeout", True)], ids=["refused", "timed-out"])
async def test_ubiqio_sends_waiting_for_a_token_request_that_fails_share_its_failure(
        answer: Reply, code: str, retryable: bool, fake: FakeProvider) -> None:
    # Each send waiting for it asked again, one after another: a token endpoint that times out
    # held the last of N sends N timeouts long, and a secret rotated at Ubiqio was tried once
    # per waiting send (a lockout, where logins are counted).
    fake.on(TOKEN_PATH, answer)
    fake.on(UBIQIO, ok("ubiqio"))

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # the others queue behind it meanwhile
        return fake.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as http:
        client = make("ubiqio", fake, http)
        outcomes = await asyncio.gather(
            *(client.send(command(id=f"cmd-{n}")) for n in range(5)), return_exceptions=True)
        assert len(fake.to(TOKEN_PATH)) == 1 and fake.to(UBIQIO) == []
        assert all(isinstance(outcome, SendError) and (outcome.code, outcome.retryable)
                   == (code, retryable) and not outcome.maybe_sent for outcome in outcomes)
        await send_error(client, command(id="cmd-later"))  # a send after it asks again
        assert len(fake.to(TOKEN_PATH)) == 2


async def test_ubiqio_sends_refused_401_that_share_a_failed_token_request_made_a_call(
        fake: FakeProvider) -> None:
    # Each send's request was answered 401 before it waited for the new token: it called
    # Ubiqio. Sharing the token request's failure said it had not, and its result counted no
    # attempt (`attempts` 0) for a request the provider had answered.
    fake.on(TOKEN_PATH, reply(200, {"token": token(600)}),
            reply(401, {"error": "Check your account key and secret"}))
    fake.on(UBIQIO, reply(401, {"error": "token revoked"}))

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # the others queue behind the token request meanwhile
        return fake.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as http:
        client = make("ubiqio", fake, http)
        outcomes = await asyncio.gather(
            *(client.send(command(id=f"cmd-{n}")) for n in range(3)), return_exceptions=True)
    assert len(fake.to(TOKEN_PATH)) == 2 and len(fake.to(UBIQIO)) == 3
    assert all(isinstance(outcome, SendError) and (outcome.code, outcome.called)
               == ("401", True) and not outcome.maybe_sent for outcome in outcomes)


async def test_no_ubiqio_token_is_fetched_once_the_worker_winds_down(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # The send after it would not be made (Stopping at the rate limit): the token request only
    # held up the stop, for up to the account's timeout_s.
    fake.on(UBIQIO, ok("ubiqio"))
    stopping = asyncio.Event()
    stopping.set()
    outbound_limits.WINDING_DOWN.set(stopping)
    error = await send_error(make("ubiqio", fake, http), command())
    assert (error.code, error.called, error.retryable) == ("stopping", False, True)
    assert fake.requests == []


async def test_a_ubiqio_token_request_answered_by_a_web_page_says_so(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(TOKEN_PATH, reply(200, text=LOGIN_PAGE, headers={"Content-Type": "text/html"}))
    error = await send_error(make("ubiqio", fake, http), command())
    assert (error.code, error.retryable) == ("token_missing", False)
    assert "text/html" in error.description and "base_url" in error.description
    assert fake.to(UBIQIO) == []


async def test_a_ubiqio_token_refusal_in_a_2xx_quotes_its_reason(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # Seed 000 shows no token answer: a refusal of the credentials with HTTP 200 was reported
    # as "no token" alone, without the reason that tells the operator what to fix.
    fake.on(TOKEN_PATH, reply(200, {"success": False, "message": "Invalid clientId"}))
    error = await send_error(make("ubiqio", fake, http), command())
    assert (error.code, error.retryable) == ("token_missing", False)
    assert error.description == "Ubiqio token response has no token: Invalid clientId"
    assert fake.to(UBIQIO) == []


def test_ubiqio_refresh_time_from_the_jwt() -> None:
    now = 1_700_000_000.0
    assert ubiqio.token_refresh_at(token(600, now), now) == int(now + 600) - 60
    assert ubiqio.token_refresh_at(token(40, now), now) == pytest.approx(now + 20, abs=1)
    assert ubiqio.token_refresh_at("not-a-jwt", now) is None
    assert ubiqio.token_refresh_at(token(None), now) is None


def test_ubiqio_refresh_time_does_not_depend_on_the_clocks_agreeing() -> None:
    now = 1_700_000_000.0
    # Issued just now for 10 minutes, by a clock 15 minutes behind ours: its lifetime counts.
    assert ubiqio.token_refresh_at(token(-300, now, lifetime=600), now) == now + 540
    # ... and by one 15 minutes ahead.
    assert ubiqio.token_refresh_at(token(1500, now, lifetime=600), now) == now + 540
    # Issued 8 minutes ago (handed out again), by a clock that agrees: its exp comes first.
    assert ubiqio.token_refresh_at(token(120, now, lifetime=600), now) == now + 60
    # Expired by our clock as it arrives, without `iat` to tell its lifetime: the clocks
    # disagree, and it is used until Ubiqio answers 401.
    assert ubiqio.token_refresh_at(token(-300, now), now) is None


async def test_ubiqio_token_is_fetched_once_when_our_clock_is_ahead_of_ubiqios(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # Its exp already past by our clock: each send fetched a token of its own, one after
    # another (a token request per message, concurrent sends queued behind each other's).
    clock = Clock()
    fake.on(TOKEN_PATH, reply(200, {"token": token(-60, clock.now)}))
    fake.on(UBIQIO, ok("ubiqio"))
    client = ubiqio_client(http, clock)
    await asyncio.gather(*(client.send(command(id=f"cmd-{n}")) for n in range(5)))
    await client.send(command(id="cmd-later"))
    assert len(fake.to(TOKEN_PATH)) == 1
    assert len(fake.to(UBIQIO)) == 6


def test_configs_reject_unknown_and_missing_keys() -> None:
    with pytest.raises(ValueError, match="sender"):
        build_client("infobip", {"base_url": BASE, "api_key": "k"}, httpx.AsyncClient(), CONTEXT)
    with pytest.raises(ValueError, match="Extra inputs"):
        build_client("bird", {**ACCOUNTS["bird"].config, "typo": 1}, httpx.AsyncClient(), CONTEXT)


@pytest.mark.parametrize("name", ["status callback", "1st", "url-for-status"])
def test_a_ubiqio_status_callback_field_that_is_not_an_identifier_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="status_callback_field"):
        build_client("ubiqio", {**ACCOUNTS["ubiqio"].config, "status_callback_field": name},
                     httpx.AsyncClient(), CONTEXT)


@pytest.mark.parametrize(("change", "key"), [
    ({"base_url": "api.infobip.com"}, "base_url"),  # no scheme: httpx refuses every request
    ({"base_url": "ftp://api.infobip.com"}, "base_url"),
    ({"api_key": "key-read-from-a-file\n"}, "api_key"),  # an env: secret with its newline
])
def test_an_outbound_config_that_can_make_no_request_is_refused_at_start(
        change: dict[str, str], key: str) -> None:
    # Accepted, every send would fail as "network error" marked maybe_sent: reported as
    # possibly taken by the provider, though not a byte left.
    config = {"base_url": BASE, "api_key": "an-infobip-key", "sender": "Acme"} | change
    with pytest.raises(ValueError, match=key) as refused:
        build_client("infobip", config, httpx.AsyncClient(), CONTEXT)
    assert "key-read-from-a-file" not in str(refused.value)


@pytest.mark.parametrize(("provider", "key"), [
    ("infobip", "api_key"), ("bird", "access_key"), ("webex", "service_key")])
def test_a_header_secret_that_is_not_ascii_is_refused_at_start(provider: str, key: str) -> None:
    # httpx encodes header values as ASCII: every send raised UnicodeEncodeError before a byte
    # left, the handler was retried and found the command pending, "outcome_unknown".
    config = {**ACCOUNTS[provider].config, key: "s3cret\u2013with-an-en-dash"}
    with pytest.raises(ValueError, match=f"{key}.*ASCII") as refused:
        build_client(provider, config, httpx.AsyncClient(), CONTEXT)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(("provider", "key"), [
    ("infobip-omnichat", "password"), ("ubiqio", "client_secret")])
async def test_a_secret_not_sent_in_a_header_may_be_any_text(
        provider: str, key: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    # Basic credentials are Base64 of UTF-8, Ubiqio's secret goes in the JSON body.
    fake.on(send_path(provider), ok(provider))
    client = make(provider, fake, http, CONTEXT, **{key: "pässwörd\u20131"})
    receipt = await client.send(command())
    assert receipt.provider_message_id == ACCOUNTS[provider].ok_id
