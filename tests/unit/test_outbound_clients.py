"""Outbound provider clients against a mock transport: the exact request each one builds, how
each maps text, media, buttons and replies, and how every failure is classified."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest

from consumers.outbound import (
    OutboundClient,
    SendContext,
    SendError,
    build_client,
    infobip,
    ubiqio,
)
from consumers.outbound import base as outbound_base
from simulator import infobip as simulated_infobip
from switchboard.accounts import Account, parse_accounts
from switchboard.commands import Button, OutboundCommand
from switchboard.events import Media
from tests.unit.fakes import ModuleWith

BASE = "https://provider.test"
WEBHOOK = "https://switchboard.test/webhooks/acme"
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
    """Serves queued replies per path (the last one repeats) and records every request."""

    routes: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get(request.url.path)
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
    values: dict[str, Any] = {"id": "cmd-1", "account": "acme", "to": "+38761222333",
                              "text": "Hello", "created_at": datetime.now(UTC)}
    return OutboundCommand.model_validate({**values, **fields})


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def token(expires_in: float | None = 600, now: float | None = None) -> str:
    claims: dict[str, Any] = {"sub": "client"}
    if expires_in is not None:
        claims["exp"] = int((now if now is not None else time.time()) + expires_in)
    return jwt.encode(claims, JWT_KEY, algorithm="HS256")


# --- per-provider setup shared by the classification tests ------------------------------

OUTBOUND: dict[str, dict[str, Any]] = {
    "infobip": {"base_url": f"{BASE}/infobip/", "api_key": "ib-key", "sender": "Acme",
                "timeout_s": 3.5},
    "infobip-omnichat": {"base_url": f"{BASE}/omni", "username": "user", "password": "pass",
                         "application_key": "APPKEY1", "timeout_s": 3.5},
    "bird": {"base_url": f"{BASE}/bird", "access_key": "bird-key", "workspace_id": "ws-1",
             "channel_id": "ch-1", "timeout_s": 3.5},
    "webex": {"base_url": f"{BASE}/webex", "service_key": "wx-key", "sender_id": "ACME",
              "timeout_s": 3.5},
    "ubiqio": {"base_url": f"{BASE}/ubiqio", "client_id": "cid", "client_secret": "csecret",
               "account_id": "acc-1", "template_id": "tpl-1", "timeout_s": 3.5},
}
SEND_PATH = {
    "infobip": "/infobip/messages-api/1/messages",
    "infobip-omnichat": "/omni/omnichat/1/applications/APPKEY1/integrations/FACEBOOK/message",
    "bird": "/bird/workspaces/ws-1/channels/ch-1/messages",
    "webex": "/webex/resources/v1/messaging",
    "ubiqio": "/ubiqio/mvapi/message/send",
}
TOKEN_PATH = "/ubiqio/mvapi/auth/token"
OK_REPLY = {
    "infobip": reply(200, {"bulkId": "b-1", "messages": [
        {"messageId": "ib-1", "destination": "38761222333",
         "status": {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "MESSAGE_ACCEPTED",
                    "description": "Message sent to next instance"}}]}),
    "infobip-omnichat": reply(200, {"to": "+38761222333", "messageCount": 1, "messageId": "om-1",
                                    "status": {"groupId": 1, "groupName": "PENDING", "id": 7,
                                               "name": "PENDING_ENROUTE"}}),
    "bird": reply(202, {"id": "bd-1", "channelId": "ch-1", "status": "accepted"}),
    "webex": reply(200, {"response": [{"code": "1001", "transid": "wx-1",
                                       "description": "Queued"}]}),
    "ubiqio": reply(200, {"messageId": "ub-1", "status": "QUEUED"}),
}
OK_ID = {"infobip": "ib-1", "infobip-omnichat": "om-1", "bird": "bd-1", "webex": "wx-1",
         "ubiqio": "ub-1"}
ALL = list(OUTBOUND)


def make(provider: str, fake: FakeProvider, http: httpx.AsyncClient,
         **overrides: Any) -> OutboundClient:
    if provider == "ubiqio" and TOKEN_PATH not in fake.routes:
        fake.on(TOKEN_PATH, reply(200, {"token": token()}))
    return build_client(provider, {**OUTBOUND[provider], **overrides}, http, CONTEXT)


async def send_error(client: OutboundClient, cmd: OutboundCommand) -> SendError:
    with pytest.raises(SendError) as caught:
        await client.send(cmd)
    return caught.value


# --- what every client shares -------------------------------------------------------------

@pytest.mark.parametrize("provider", ALL)
async def test_success_returns_the_provider_message_id_and_uses_the_timeout(
        provider: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(SEND_PATH[provider], OK_REPLY[provider])
    receipt = await make(provider, fake, http).send(command())
    assert receipt.provider_message_id == OK_ID[provider]
    sent = fake.to(SEND_PATH[provider])
    assert len(sent) == 1
    assert sent[0].method == "POST"
    assert sent[0].headers["content-type"] == "application/json"
    assert sent[0].extensions["timeout"]["read"] == 3.5


@pytest.mark.parametrize("provider", ALL)
@pytest.mark.parametrize(("status", "body", "maybe_sent"), [
    (500, {"error": "boom"}, True), (502, None, True), (504, None, True),
    (503, {"requestError": {}}, False), (408, None, False)])
async def test_server_errors_are_retryable(provider: str, status: int, body: Any,
                                           maybe_sent: bool, fake: FakeProvider,
                                           http: httpx.AsyncClient) -> None:
    # A 500 or a gateway's 502/504 may come after the provider took the message: the sender
    # must not send it again, though the caller may (with a new id) once it knows.
    fake.on(SEND_PATH[provider], reply(status, body))
    error = await send_error(make(provider, fake, http), command())
    assert error.retryable
    assert error.maybe_sent is maybe_sent
    assert str(status) in error.description


@pytest.mark.parametrize("provider", ALL)
async def test_a_non_json_5xx_is_retryable(provider: str, fake: FakeProvider,
                                           http: httpx.AsyncClient) -> None:
    fake.on(SEND_PATH[provider], reply(503, text="<html><body>Service Unavailable</body></html>"))
    error = await send_error(make(provider, fake, http), command())
    assert error.retryable
    assert "Service Unavailable" in error.description


@pytest.mark.parametrize("provider", ALL)
async def test_429_is_retryable_after_retry_after(provider: str, fake: FakeProvider,
                                                  http: httpx.AsyncClient) -> None:
    fake.on(SEND_PATH[provider], reply(429, {"error": "slow down"}, headers={"Retry-After": "7"}))
    error = await send_error(make(provider, fake, http), command())
    assert error.retryable
    assert error.retry_after_s == 7


@pytest.mark.parametrize("provider", ALL)
async def test_a_timeout_is_retryable(provider: str, fake: FakeProvider,
                                      http: httpx.AsyncClient) -> None:
    fake.on(SEND_PATH[provider], timeout)
    error = await send_error(make(provider, fake, http), command())
    assert (error.retryable, error.code) == (True, "timeout")
    assert error.maybe_sent  # a read timeout: the request went out


@pytest.mark.parametrize("provider", ALL)
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
    fake.on(SEND_PATH[provider], fail)
    error = await send_error(make(provider, fake, http), command())
    assert (error.retryable, error.code, error.maybe_sent) == (True, code, maybe_sent)


@pytest.mark.parametrize("provider", ALL)
@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_validation_and_auth_errors_are_permanent(provider: str, status: int,
                                                        fake: FakeProvider,
                                                        http: httpx.AsyncClient) -> None:
    fake.on(SEND_PATH[provider], reply(status, {"message": "invalid destination"}))
    error = await send_error(make(provider, fake, http), command())
    assert not error.retryable
    assert f"HTTP {status}" in error.description


@pytest.mark.parametrize("provider", [p for p in ALL if p != "ubiqio"])
async def test_401_is_permanent(provider: str, fake: FakeProvider,
                                http: httpx.AsyncClient) -> None:
    fake.on(SEND_PATH[provider], reply(401, None))
    error = await send_error(make(provider, fake, http), command())
    assert not error.retryable


@pytest.mark.parametrize("provider", ALL)
@pytest.mark.parametrize("body", [None, {}, {"unexpected": [1, 2]}, [], "text"])
async def test_a_2xx_without_an_id_is_accepted_without_one(provider: str, body: Any,
                                                           fake: FakeProvider,
                                                           http: httpx.AsyncClient) -> None:
    """Resending could send the message twice; the correlation id still ties the reports."""
    fake.on(SEND_PATH[provider], reply(200, text="") if body is None else reply(200, body))
    receipt = await make(provider, fake, http).send(command())
    assert receipt.provider_message_id is None


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


@pytest.mark.parametrize("provider", ALL)
async def test_sends_are_rate_limited_per_account(provider: str, fake: FakeProvider,
                                                  http: httpx.AsyncClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clock = StoppedClock()
    monkeypatch.setattr(outbound_base, "time", ModuleWith(time, monotonic=clock.monotonic))
    monkeypatch.setattr(outbound_base, "asyncio", ModuleWith(asyncio, sleep=clock.sleep))

    def answer(request: httpx.Request) -> httpx.Response:
        clock.timeline.append("send")
        return OK_REPLY[provider](request)

    fake.on(SEND_PATH[provider], answer)
    client = make(provider, fake, http, rate_per_s=16, burst=1)
    other_account = make(provider, fake, http, rate_per_s=16, burst=1)
    for _ in range(3):
        await client.send(command())
    # The burst of 1 goes at once; each later send waits for its token: 1/16 s at 16/s.
    assert clock.timeline == ["send", 0.0625, "send", 0.0625, "send"]
    await other_account.send(command())  # a bucket of its own, still full: no wait
    assert clock.timeline[5:] == ["send"]


@pytest.mark.parametrize("provider", ALL)
async def test_an_uncarriable_command_is_refused_before_any_request(
        provider: str, fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(SEND_PATH[provider], OK_REPLY[provider])
    too_much = [Media(url=f"https://cdn.test/{n}.pdf") for n in range(11)]
    error = await send_error(make(provider, fake, http), command(media=too_much))
    assert (error.retryable, error.code) == (False, "unsupported_content")
    assert fake.requests == []


# --- Infobip Messages API -----------------------------------------------------------------

INFOBIP = SEND_PATH["infobip"]


async def test_infobip_text_request(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, OK_REPLY["infobip"])
    receipt = await make("infobip", fake, http).send(command(in_reply_to="ignored"))
    (request,) = fake.requests
    assert str(request.url) == f"{BASE}{INFOBIP}"
    assert request.headers["authorization"] == "App ib-key"
    assert body_of(request) == {"messages": [{
        "channel": "SMS",
        "sender": "Acme",
        "destinations": [{"to": "38761222333"}],  # seed 003 writes numbers without +
        "content": {"body": {"type": "TEXT", "text": "Hello"}},
        "webhooks": {"callbackData": "cmd-1", "delivery": {"url": WEBHOOK},
                     "seen": {"url": WEBHOOK}},
    }]}
    assert receipt.provider_status == "MESSAGE_ACCEPTED"


async def test_infobip_without_webhook_url_still_sends_callback_data(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, OK_REPLY["infobip"])
    client = build_client("infobip", OUTBOUND["infobip"], http,
                          SendContext(account="acme", webhook_url=None))
    await client.send(command())
    assert body_of(fake.requests[0])["messages"][0]["webhooks"] == {"callbackData": "cmd-1"}


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


async def test_webex_names_its_authentication_profile_with_the_plain_url(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(WEBEX, OK_REPLY["webex"])
    config = {**OUTBOUND["webex"], "notify_auth_id": "profile-7"}
    context = SendContext(account="acme", webhook_url=None, plain_webhook_url=WEBHOOK)
    await build_client("webex", config, http, context).send(command())
    sent = body_of(fake.requests[0])
    assert (sent["notifyurl"], sent["notifyurlAuthId"]) == (WEBHOOK, "profile-7")


async def test_infobip_buttons_on_a_button_channel(fake: FakeProvider,
                                                   http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, OK_REPLY["infobip"])
    buttons = [Button(title="Yes", payload="y"), Button(title="No", payload="n")]
    await make("infobip", fake, http).send(command(channel="whatsapp", buttons=buttons))
    message = body_of(fake.requests[0])["messages"][0]
    assert message["channel"] == "WHATSAPP"
    assert message["content"] == {
        "body": {"type": "TEXT", "text": "Hello"},
        "buttons": [{"type": "REPLY", "text": "Yes", "postbackData": "y"},
                    {"type": "REPLY", "text": "No", "postbackData": "n"}]}


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


async def test_infobip_buttons_on_sms_become_numbered_choices(fake: FakeProvider,
                                                              http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, OK_REPLY["infobip"])
    buttons = [Button(title="Yes", payload="y"), Button(title="No", payload="n")]
    await make("infobip", fake, http).send(command(buttons=buttons))
    content = body_of(fake.requests[0])["messages"][0]["content"]
    assert content == {"body": {"type": "TEXT", "text": "Hello\n1) Yes 2) No"}}


@pytest.mark.parametrize(("media", "expected"), [
    (Media(url="https://cdn.test/a.png"), {"type": "IMAGE", "url": "https://cdn.test/a.png",
                                           "text": "Hello"}),
    (Media(url="https://cdn.test/v", content_type="video/mp4"),
     {"type": "VIDEO", "url": "https://cdn.test/v", "text": "Hello"}),
    (Media(url="https://cdn.test/doc.pdf"), {"type": "DOCUMENT", "url": "https://cdn.test/doc.pdf",
                                             "text": "Hello"}),
])
async def test_infobip_media_bodies(media: Media, expected: dict[str, Any], fake: FakeProvider,
                                    http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, OK_REPLY["infobip"])
    await make("infobip", fake, http).send(command(channel="WHATSAPP", media=[media]))
    assert body_of(fake.requests[0])["messages"][0]["content"]["body"] == expected


async def test_infobip_image_caption_when_there_is_no_text(fake: FakeProvider,
                                                           http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, OK_REPLY["infobip"])
    media = Media(url="https://cdn.test/a.jpg", caption="Look")
    await make("infobip", fake, http).send(command(text=None, media=[media]))
    body = body_of(fake.requests[0])["messages"][0]["content"]["body"]
    assert body == {"type": "IMAGE", "url": "https://cdn.test/a.jpg", "text": "Look"}


async def test_infobip_two_media_items_are_refused(fake: FakeProvider,
                                                   http: httpx.AsyncClient) -> None:
    media = [Media(url="https://cdn.test/a.jpg"), Media(url="https://cdn.test/b.jpg")]
    error = await send_error(make("infobip", fake, http), command(media=media))
    assert not error.retryable
    assert "one media item" in error.description
    assert fake.requests == []


async def test_infobip_request_error_body(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, reply(400, {"requestError": {"serviceException": {
        "messageId": "BAD_REQUEST", "text": "Invalid destination address"}}}))
    error = await send_error(make("infobip", fake, http), command())
    assert (error.retryable, error.code) == (False, "BAD_REQUEST")
    assert error.description == "HTTP 400: Invalid destination address"


async def test_infobip_newer_error_body(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, reply(401, {"errorCode": "E401", "description": "Unauthorized"}))
    error = await send_error(make("infobip", fake, http), command())
    assert (error.retryable, error.code, error.description) == (False, "E401",
                                                                "HTTP 401: Unauthorized")


async def test_infobip_rejected_status_in_a_200_is_permanent(fake: FakeProvider,
                                                             http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, reply(200, {"messages": [{"messageId": "ib-2", "status": {
        "groupId": 5, "groupName": "REJECTED", "id": 51, "name": "MISSING_TO",
        "description": "Missing destination"}}]}))
    error = await send_error(make("infobip", fake, http), command())
    assert (error.retryable, error.code) == (False, "MISSING_TO")
    assert "Missing destination" in error.description


# --- Infobip Omnichat ---------------------------------------------------------------------

OMNI = SEND_PATH["infobip-omnichat"]


async def test_omnichat_text_request(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(OMNI, OK_REPLY["infobip-omnichat"])
    receipt = await make("infobip-omnichat", fake, http).send(command(to="37512FEC78DB"))
    (request,) = fake.requests
    assert str(request.url) == f"{BASE}{OMNI}"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"user:pass").decode()
    assert body_of(request) == {"to": "37512FEC78DB", "message": {"type": "TEXT", "text": "Hello"}}
    assert (receipt.provider_message_id, receipt.provider_status) == ("om-1", "PENDING_ENROUTE")


async def test_omnichat_integration_type_from_config(fake: FakeProvider,
                                                     http: httpx.AsyncClient) -> None:
    path = "/omni/omnichat/1/applications/APPKEY1/integrations/TELEGRAM/message"
    fake.on(path, OK_REPLY["infobip-omnichat"])
    await make("infobip-omnichat", fake, http, integration_type="TELEGRAM").send(command())
    assert fake.requests[0].url.path == path


async def test_omnichat_image(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(OMNI, OK_REPLY["infobip-omnichat"])
    media = [Media(url="https://cdn.test/shirt.png", caption="Shirt")]
    await make("infobip-omnichat", fake, http).send(command(text=None, media=media))
    assert body_of(fake.requests[0])["message"] == {
        "type": "IMAGE", "text": "Shirt", "url": "https://cdn.test/shirt.png"}


async def test_omnichat_buttons(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(OMNI, OK_REPLY["infobip-omnichat"])
    buttons = [Button(title=t, payload=f"p-{t}") for t in ("A", "B", "C")]
    await make("infobip-omnichat", fake, http).send(command(text="Pick", buttons=buttons))
    assert body_of(fake.requests[0])["message"] == {
        "type": "BUTTONS", "text": "Pick",
        "buttons": [{"type": "POSTBACK", "text": t, "payload": f"p-{t}"} for t in "ABC"]}


@pytest.mark.parametrize(("fields", "reason"), [
    ({"buttons": [Button(title=str(n), payload=str(n)) for n in range(4)]}, "at most 3"),
    ({"buttons": [Button(title="A", payload="a")], "media": [Media(url="https://c.test/a.png")]},
     "cannot carry media"),
    ({"media": [Media(url="https://c.test/doc.pdf")]}, "only images"),
    ({"media": [Media(url="https://c.test/a.png"), Media(url="https://c.test/b.png")]},
     "one image"),
    ({"text": None, "media": [Media(url="https://c.test/a.png")]}, "need text"),
])
async def test_omnichat_refuses_what_it_cannot_carry(fields: dict[str, Any], reason: str,
                                                     fake: FakeProvider,
                                                     http: httpx.AsyncClient) -> None:
    error = await send_error(make("infobip-omnichat", fake, http), command(**fields))
    assert (error.retryable, error.code) == (False, "unsupported_content")
    assert reason in error.description
    assert fake.requests == []


async def test_omnichat_unauthorized_body(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(OMNI, reply(401, {"requestError": {"serviceException": {
        "messageId": "UNAUTHORIZED", "text": "Invalid login details"}}}))
    error = await send_error(make("infobip-omnichat", fake, http), command())
    assert (error.retryable, error.code) == (False, "UNAUTHORIZED")
    assert error.description == "HTTP 401: Invalid login details"


# --- Bird ---------------------------------------------------------------------------------

BIRD = SEND_PATH["bird"]


async def test_bird_text_request(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(BIRD, OK_REPLY["bird"])
    receipt = await make("bird", fake, http).send(command(in_reply_to="bd-0"))
    (request,) = fake.requests
    assert str(request.url) == f"{BASE}{BIRD}"
    assert request.headers["authorization"] == "AccessKey bird-key"
    assert body_of(request) == {
        "receiver": {"contacts": [{"identifierValue": "+38761222333"}]},
        "reference": "cmd-1",
        "body": {"type": "text", "text": {"text": "Hello"}},
        "replyTo": {"id": "bd-0", "type": "message"},
    }
    assert (receipt.provider_message_id, receipt.provider_status) == ("bd-1", "accepted")


async def test_bird_images(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(BIRD, OK_REPLY["bird"])
    media = [Media(url="https://c.test/a.png"),
             Media(url="https://c.test/b", content_type="image/jpeg")]
    await make("bird", fake, http).send(command(media=media))
    assert body_of(fake.requests[0])["body"] == {"type": "image", "image": {
        "images": [{"mediaUrl": "https://c.test/a.png"}, {"mediaUrl": "https://c.test/b"}],
        "text": "Hello"}}


async def test_bird_other_media_are_files(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(BIRD, OK_REPLY["bird"])
    media = [Media(url="https://c.test/v.mp4", caption="Clip"), Media(url="https://c.test/a.png"),
             Media(url="https://c.test/blob")]
    await make("bird", fake, http).send(command(text=None, media=media))
    assert body_of(fake.requests[0])["body"] == {"type": "file", "file": {
        "files": [{"mediaUrl": "https://c.test/v.mp4", "contentType": "video/mp4"},
                  {"mediaUrl": "https://c.test/a.png", "contentType": "image/png"},
                  {"mediaUrl": "https://c.test/blob"}],
        "text": "Clip"}}


async def test_bird_buttons_become_numbered_choices(fake: FakeProvider,
                                                    http: httpx.AsyncClient) -> None:
    fake.on(BIRD, OK_REPLY["bird"])
    buttons = [Button(title="Yes", payload="y"), Button(title="No", payload="n")]
    await make("bird", fake, http).send(command(text="Continue?", buttons=buttons))
    assert body_of(fake.requests[0])["body"] == {
        "type": "text", "text": {"text": "Continue?\n1) Yes 2) No"}}


@pytest.mark.parametrize("status", ["rejected", "sending_failed"])
async def test_bird_failed_status_in_a_2xx_is_permanent(status: str, fake: FakeProvider,
                                                        http: httpx.AsyncClient) -> None:
    fake.on(BIRD, reply(202, {"id": "bd-2", "status": status,
                              "failure": {"description": "Unsupported media type"}}))
    error = await send_error(make("bird", fake, http), command())
    assert (error.retryable, error.code) == (False, status)
    assert "Unsupported media type" in error.description


async def test_bird_error_body(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(BIRD, reply(422, {"code": "InvalidPayload", "message": "receiver is required"}))
    error = await send_error(make("bird", fake, http), command())
    assert (error.retryable, error.code) == (False, "InvalidPayload")
    assert error.description == "HTTP 422: receiver is required"


# --- Webex Connect ------------------------------------------------------------------------

WEBEX = SEND_PATH["webex"]


async def test_webex_request(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(WEBEX, OK_REPLY["webex"])
    receipt = await make("webex", fake, http).send(command(in_reply_to="ignored"))
    (request,) = fake.requests
    assert str(request.url) == f"{BASE}{WEBEX}"
    assert request.headers["key"] == "wx-key"
    assert "authorization" not in request.headers
    assert body_of(request) == {
        "deliverychannel": "sms",
        "destination": [{"msisdn": ["+38761222333"]}],
        "channels": {"sms": {"senderid": "ACME", "text": "Hello"}},
        "correlationid": "cmd-1",
        "callbackData": "cmd-1",
        "notifyurl": WEBHOOK,
    }
    assert (receipt.provider_message_id, receipt.provider_status) == ("wx-1", "Queued")


async def test_webex_unicode_text(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(WEBEX, OK_REPLY["webex"])
    await make("webex", fake, http).send(command(text="Zdravo, čestitamo 🎉"))
    assert body_of(fake.requests[0])["channels"]["sms"]["type"] == "4"


async def test_webex_buttons_become_numbered_choices(fake: FakeProvider,
                                                     http: httpx.AsyncClient) -> None:
    fake.on(WEBEX, OK_REPLY["webex"])
    buttons = [Button(title="Yes", payload="y"), Button(title="No", payload="n")]
    await make("webex", fake, http).send(command(buttons=buttons))
    assert body_of(fake.requests[0])["channels"]["sms"]["text"] == "Hello\n1) Yes 2) No"


@pytest.mark.parametrize(("fields", "reason"), [
    ({"media": [Media(url="https://c.test/a.png")]}, "cannot carry media"),
    ({"channel": "whatsapp"}, "SMS only"),
    ({"text": "x" * 1025}, "at most 1024"),
])
async def test_webex_refuses_what_sms_cannot_carry(fields: dict[str, Any], reason: str,
                                                   fake: FakeProvider,
                                                   http: httpx.AsyncClient) -> None:
    error = await send_error(make("webex", fake, http), command(**fields))
    assert (error.retryable, error.code) == (False, "unsupported_content")
    assert reason in error.description
    assert fake.requests == []


@pytest.mark.parametrize(("code", "retryable"), [
    ("7001", False), ("7000", False), ("7004", False), ("7007", False),
    ("7006", True), ("7020", True)])
async def test_webex_http_200_with_an_error_body(code: str, retryable: bool, fake: FakeProvider,
                                                 http: httpx.AsyncClient) -> None:
    fake.on(WEBEX, reply(200, {"response": {"code": code, "description": "Authentication failed.",
                                            "transid": "7670c9a8"}}))
    error = await send_error(make("webex", fake, http), command())
    assert (error.retryable, error.code) == (retryable, code)
    assert error.description == f"Webex error {code}: Authentication failed."


async def test_webex_error_code_in_a_result_list(fake: FakeProvider,
                                                 http: httpx.AsyncClient) -> None:
    fake.on(WEBEX, reply(200, {"response": [{"code": "7003", "description": "Mandatory "
                                             "parameters missing", "transid": "t"}]}))
    error = await send_error(make("webex", fake, http), command())
    assert (error.retryable, error.code) == (False, "7003")


async def test_webex_http_error_keeps_the_webex_code(fake: FakeProvider,
                                                     http: httpx.AsyncClient) -> None:
    fake.on(WEBEX, reply(403, {"code": "7001", "message": "Authentication failed."}))
    error = await send_error(make("webex", fake, http), command())
    assert (error.retryable, error.code) == (False, "7001")
    assert error.description == "HTTP 403: Authentication failed."


# --- Ubiqio -------------------------------------------------------------------------------

UBIQIO = SEND_PATH["ubiqio"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def ubiqio_client(http: httpx.AsyncClient, clock: Clock, **overrides: Any) -> ubiqio.Client:
    config = ubiqio.Config.model_validate({**OUTBOUND["ubiqio"], **overrides})
    return ubiqio.Client(config, http, CONTEXT, clock=clock)


async def test_ubiqio_token_then_send(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    jwt_token = token()
    fake.on(TOKEN_PATH, reply(200, {"token": jwt_token}))
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
    receipt = await make("ubiqio", fake, http).send(command())
    auth, send = fake.requests
    assert str(auth.url) == f"{BASE}{TOKEN_PATH}"
    assert body_of(auth) == {"clientId": "cid", "clientSecret": "csecret"}
    assert str(send.url) == f"{BASE}{UBIQIO}"
    assert send.headers["authorization"] == f"Bearer {jwt_token}"
    assert body_of(send) == {
        "accountId": "acc-1", "toNumber": "+38761222333", "message": "Hello",
        "templateId": "tpl-1", "priority": 1, "channel": "SMS", "clientRef": "cmd-1",
        "statusCallback": WEBHOOK,
    }
    assert (receipt.provider_message_id, receipt.provider_status) == ("ub-1", "QUEUED")


async def test_ubiqio_token_is_cached(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
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
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
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
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
    client = ubiqio_client(http, clock)
    await client.send(command())
    clock.now += 86_400
    await client.send(command())
    assert len(fake.to(TOKEN_PATH)) == 1


async def test_ubiqio_401_fetches_a_new_token_once(fake: FakeProvider,
                                                   http: httpx.AsyncClient) -> None:
    old, new = token(600), token(900)
    fake.on(TOKEN_PATH, reply(200, {"token": old}), reply(200, {"token": new}))
    fake.on(UBIQIO, reply(401, {"error": "token revoked"}), OK_REPLY["ubiqio"])
    receipt = await make("ubiqio", fake, http).send(command())
    assert receipt.provider_message_id == "ub-1"
    sends = [request.headers["authorization"] for request in fake.to(UBIQIO)]
    assert sends == [f"Bearer {old}", f"Bearer {new}"]


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
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
    client = make("ubiqio", fake, http)
    await asyncio.gather(*(client.send(command(id=f"cmd-{n}")) for n in range(5)))
    assert len(fake.to(TOKEN_PATH)) == 1


@pytest.mark.parametrize(("status", "body", "retryable"), [
    (401, {"error": "Check your account key and secret"}, False),
    (400, {"error": "Check your account key and secret"}, False),
    (500, None, True),
    (200, {"nothing": "here"}, False),
])
async def test_ubiqio_token_failures(status: int, body: Any, retryable: bool,
                                     fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(TOKEN_PATH, reply(status, body))
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
    error = await send_error(make("ubiqio", fake, http), command())
    assert error.retryable is retryable
    assert not error.maybe_sent
    assert fake.to(UBIQIO) == []
    if status == 401:
        assert "Check your account key and secret" in error.description


async def test_ubiqio_token_timeout_is_retryable(fake: FakeProvider,
                                                 http: httpx.AsyncClient) -> None:
    fake.on(TOKEN_PATH, timeout)
    error = await send_error(make("ubiqio", fake, http), command())
    assert (error.retryable, error.code) == (True, "timeout")
    assert not error.maybe_sent  # asking for a token again sends no message


async def test_ubiqio_mms_image(fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
    media = [Media(url="https://c.test/a.jpg", caption="Our shop")]
    await make("ubiqio", fake, http, priority=0).send(command(media=media))
    body = body_of(fake.to(UBIQIO)[0])
    assert (body["channel"], body["imageUrl"], body["caption"], body["message"],
            body["priority"]) == ("MMS", "https://c.test/a.jpg", "Our shop", "Hello", 0)


async def test_ubiqio_text_reply_to_an_mms_goes_as_sms(fake: FakeProvider,
                                                      http: httpx.AsyncClient) -> None:
    # A bot's reply copies the inbound channel, `mms`: without an image there is no MMS.
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
    await make("ubiqio", fake, http).send(command(channel="mms"))
    body = body_of(fake.to(UBIQIO)[0])
    assert body["channel"] == "SMS" and "imageUrl" not in body


@pytest.mark.parametrize(("to", "sent"), [("+38761222333", "38761222333"),
                                          ("apple-user-7f3a", "apple-user-7f3a")])
def test_infobip_writes_numbers_without_plus_and_user_ids_as_given(to: str, sent: str) -> None:
    config = infobip.Config.model_validate(OUTBOUND["infobip"])
    request = infobip.build_request(command(to=to), config, None)
    assert request["messages"][0]["destinations"] == [{"to": sent}]


async def test_ubiqio_buttons_become_numbered_choices(fake: FakeProvider,
                                                      http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
    buttons = [Button(title="Yes", payload="y"), Button(title="No", payload="n")]
    await make("ubiqio", fake, http).send(command(buttons=buttons))
    assert body_of(fake.to(UBIQIO)[0])["message"] == "Hello\n1) Yes 2) No"


@pytest.mark.parametrize(("fields", "reason"), [
    ({"media": [Media(url="https://c.test/doc.pdf")]}, "only images"),
    ({"media": [Media(url="https://c.test/a.png"), Media(url="https://c.test/b.png")]},
     "one image"),
    ({"channel": "whatsapp"}, "SMS or MMS"),
])
async def test_ubiqio_refuses_what_it_cannot_carry(fields: dict[str, Any], reason: str,
                                                   fake: FakeProvider,
                                                   http: httpx.AsyncClient) -> None:
    error = await send_error(make("ubiqio", fake, http), command(**fields))
    assert (error.retryable, error.code) == (False, "unsupported_content")
    assert reason in error.description
    assert fake.requests == []


@pytest.mark.parametrize("body", [{"data": {"id": "ub-7"}}, {"result": {"messageId": 7}},
                                  {"message": {"msgId": "ub-7"}}])
async def test_ubiqio_reads_a_nested_id(body: dict[str, Any], fake: FakeProvider,
                                        http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, reply(200, body))
    receipt = await make("ubiqio", fake, http).send(command())
    assert receipt.provider_message_id in ("ub-7", "7")


async def test_ubiqio_2xx_with_an_error_is_permanent(fake: FakeProvider,
                                                     http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, reply(200, {"error": "template not found"}))
    error = await send_error(make("ubiqio", fake, http), command())
    assert not error.retryable
    assert "template not found" in error.description


async def test_ubiqio_2xx_with_a_message_note_is_accepted(fake: FakeProvider,
                                                          http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, reply(200, {"message": "Message was successfully processed"}))
    receipt = await make("ubiqio", fake, http).send(command())
    assert receipt.provider_message_id is None


def test_ubiqio_refresh_time_from_the_jwt() -> None:
    now = 1_700_000_000.0
    assert ubiqio.token_refresh_at(token(600, now), now) == int(now + 600) - 60
    assert ubiqio.token_refresh_at(token(40, now), now) == pytest.approx(now + 20, abs=1)
    assert ubiqio.token_refresh_at("not-a-jwt", now) is None
    assert ubiqio.token_refresh_at(token(None), now) is None


def test_configs_reject_unknown_and_missing_keys() -> None:
    with pytest.raises(ValueError, match="sender"):
        build_client("infobip", {"base_url": BASE, "api_key": "k"}, httpx.AsyncClient(), CONTEXT)
    with pytest.raises(ValueError, match="Extra inputs"):
        build_client("bird", {**OUTBOUND["bird"], "typo": 1}, httpx.AsyncClient(), CONTEXT)


async def test_infobip_violations_are_in_the_description(fake: FakeProvider,
                                                         http: httpx.AsyncClient) -> None:
    fake.on(INFOBIP, reply(400, {"errorCode": "E400", "description": "Request cannot be processed.",
                                 "violations": [{"property": "messages[0].sender",
                                                 "violation": "must not be blank"}]}))
    error = await send_error(make("infobip", fake, http), command())
    assert (error.retryable, error.code) == (False, "E400")
    assert error.description == ("HTTP 400: Request cannot be processed. "
                                 "(messages[0].sender: must not be blank)")


async def test_ubiqio_image_without_text_sends_the_caption_as_message(
        fake: FakeProvider, http: httpx.AsyncClient) -> None:
    fake.on(UBIQIO, OK_REPLY["ubiqio"])
    media = [Media(url="https://c.test/a.jpg", caption="Our shop")]
    await make("ubiqio", fake, http).send(command(text=None, media=media))
    body = body_of(fake.to(UBIQIO)[0])
    assert (body["message"], body["caption"], body["channel"]) == ("Our shop", "Our shop", "MMS")
