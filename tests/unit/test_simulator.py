"""The provider simulator: send APIs (auth, shapes, validation, faults) and its webhook bodies.

Each provider's accounts and sends are fixtures (tests/fixtures/<provider>/simulator/, format:
tests/outbound_fixtures.py): `test_send_case` runs every send, and the shared tests make each
provider's `send.json`.

Webhook bodies are checked against the real normalizers; delivery (signing, ordering, retries)
is checked against an in-process stand-in for ingest that verifies auth with `ingest.auth`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from consumers.outbound import SendError
from ingest.auth import AuthError, SignedRequest, verify
from normalizers import WebhookRequest, normalize
from simulator import app as simulator_app
from simulator import ubiqio
from simulator.app import SIMULATED, create_simulator_app
from simulator.base import Inbound, InboundNotSupported, ReceivedSend
from simulator.webhooks import RetryPolicy
from switchboard.accounts import Account, Accounts, load_accounts, parse_accounts
from switchboard.events import EventType, MessageEvent, Status
from switchboard.providers import PROVIDERS, provider_module
from tests.fixtures import Fixture
from tests.outbound_fixtures import load_simulator_accounts, load_simulator_sends
from tests.unit.fakes import ModuleWith

COMMAND_ID = "cmd-0001"
USER = "+38761222333"
USER_KEY = "37512FEC78DBC1895567B09AE6D9439328C12E83BC83D449BC4A9F32F1AE3C3A"
WS, CH = "ws-1111", "ch-2222"
INGEST = "http://ingest.test"
EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"

SETUP = {provider: load_simulator_accounts(provider) for provider in PROVIDERS}
ACCOUNTS: dict[str, Any] = {name: account for setup in SETUP.values()
                            for name, account in setup["accounts"].items()}
SENDS = load_simulator_sends()
SEND = {case.provider: case.spec for case in SENDS if case.name == "send"}


def _accounts() -> Accounts:
    return parse_accounts({"accounts": ACCOUNTS})


def _account(name: str) -> Account:
    account = _accounts().get(ACCOUNTS[name]["provider"], name)
    assert account is not None
    return account


@pytest.fixture
def sim_app() -> Starlette:
    """A simulator with no ingest URL (webhooks are only counted as skipped)."""
    return create_simulator_app(_accounts(), None, status_delay_s=0)


@pytest.fixture
async def sim(sim_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim_app),
                                 base_url="http://sim") as client:
        yield client


# --- what a client sends (per the send documents and the outbound brief) ---------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def infobip_send(channel: str = "SMS", sender: str = "ACME", *, intermediate: bool = False,
                 url: str | None = None) -> dict[str, Any]:
    """As the client sends it: no per-message URL for an account whose webhooks use Basic
    (Infobip would add no credentials to it); its subscription reports."""
    hooks: dict[str, Any] = {"delivery": {"intermediateReport": intermediate},
                             "callbackData": COMMAND_ID}
    if url is not None:
        hooks["delivery"]["url"] = url
        hooks["seen"] = {"url": url}
    return {"messages": [{"channel": channel, "sender": sender,
                          "destinations": [{"to": USER.lstrip("+")}],
                          "content": {"body": {"type": "TEXT", "text": "Hello"}},
                          "webhooks": hooks}]}


def bird_send() -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(SEND["bird"]["request"]["json"])
    return body


def webex_send(channel: str = "sms", sender: str = "ACME") -> dict[str, Any]:
    return {"deliverychannel": channel, "destination": [{"msisdn": [USER.lstrip("+")]}],
            "channels": {channel: {"senderid": sender, "text": "Hello"}},
            "correlationid": COMMAND_ID, "callbackData": COMMAND_ID}


def webex_sms(**fields: Any) -> dict[str, Any]:
    """webex_send() with these fields in `channels.sms`."""
    body = webex_send()
    body["channels"]["sms"].update(fields)
    return body


def ubiqio_send(**changes: Any) -> dict[str, Any]:
    return {**SEND["ubiqio"]["request"]["json"], **changes}


async def fetch_token(sim: httpx.AsyncClient, ask: dict[str, Any]) -> str:
    """The token a send fixture's "token" request gets."""
    response = await sim.post(ask["path"], json=ask["json"])
    assert response.status_code == 200
    token: str = response.json()["token"]
    return token


async def ubiqio_token(sim: httpx.AsyncClient) -> str:
    return await fetch_token(sim, SEND["ubiqio"]["token"])


async def post_send(sim: httpx.AsyncClient, spec: dict[str, Any]) -> httpx.Response:
    """Make a fixture's send (fetching its token first if it has one)."""
    request, headers = spec["request"], dict(spec["request"]["headers"])
    if "token" in spec:
        token = await fetch_token(sim, spec["token"])
        headers = {name: value.replace("{token}", token) for name, value in headers.items()}
    return await sim.post(request["path"], json=request["json"], headers=headers)


async def send_ok(sim: httpx.AsyncClient, provider: str) -> httpx.Response:
    """A valid send for one account of `provider`, as its client would make it."""
    return await post_send(sim, SEND[provider])


def contains(got: Any, want: Any) -> bool:
    """Whether `got` has what `want` has: dicts may have more keys, lists are item by item."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(key in got and contains(got[key], value)
                                             for key, value in want.items())
    if isinstance(want, list):
        return (isinstance(got, list) and len(got) == len(want)
                and all(contains(g, w) for g, w in zip(got, want, strict=True)))
    return bool(got == want)


async def recorded(sim: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
    response = await sim.get("/_sim/sends", params=filters)
    assert response.status_code == 200
    sends: list[dict[str, Any]] = response.json()["sends"]
    return sends


# --- send APIs: success shapes ---------------------------------------------------------------


async def test_infobip_send_answers_bulk_and_records(sim: httpx.AsyncClient) -> None:
    response = await send_ok(sim, "infobip")
    assert response.status_code == 200
    body = response.json()
    message = body["messages"][0]
    assert body["bulkId"] and message["messageId"].isdigit()
    assert message["status"]["name"] == "MESSAGE_ACCEPTED"
    assert message["destination"] == USER.lstrip("+")
    [send] = await recorded(sim)
    assert send["provider"] == "infobip" and send["account"] == "ib"
    assert send["path"] == "/infobip/messages-api/1/messages"
    assert send["correlation_id"] == COMMAND_ID
    assert send["provider_message_id"] == message["messageId"]
    assert send["body"] == infobip_send()


async def test_omnichat_send_answers_pending_enroute(sim: httpx.AsyncClient) -> None:
    response = await send_ok(sim, "infobip-omnichat")
    assert response.status_code == 200
    body = response.json()
    assert body["to"] == USER_KEY and body["messageCount"] == 1
    assert body["status"]["name"] == "PENDING_ENROUTE"
    [send] = await recorded(sim, provider="infobip-omnichat")
    assert send["provider_message_id"] == body["messageId"]
    assert send["channel"] == "messenger"
    assert send["correlation_id"] is None  # the send API has no correlation field


async def test_bird_send_answers_202_with_the_message(sim: httpx.AsyncClient) -> None:
    response = await send_ok(sim, "bird")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted" and body["reference"] == COMMAND_ID
    assert body["channelId"] == CH and body["direction"] == "outgoing"
    assert body["receiver"]["contacts"][0]["identifierValue"] == USER
    [send] = await recorded(sim, account="bird")
    assert send["provider_message_id"] == body["id"] and send["correlation_id"] == COMMAND_ID


async def test_webex_send_answers_queued_array(sim: httpx.AsyncClient) -> None:
    response = await send_ok(sim, "webex")
    assert response.status_code == 200
    [item] = response.json()["response"]
    assert item["code"] == "1001" and item["description"] == "Queued"
    [send] = await recorded(sim, provider="webex")
    assert send["provider_message_id"] == item["transid"]
    assert send["correlation_id"] == COMMAND_ID


async def test_ubiqio_token_then_send(sim: httpx.AsyncClient) -> None:
    response = await send_ok(sim, "ubiqio")
    assert response.status_code == 200
    body = response.json()
    assert body["clientRef"] == COMMAND_ID and body["messageId"]
    [send] = await recorded(sim, provider="ubiqio")
    assert send["provider_message_id"] == body["messageId"]
    assert send["correlation_id"] == COMMAND_ID


async def test_sends_filter_and_clear(sim: httpx.AsyncClient) -> None:
    for provider in PROVIDERS:
        assert (await send_ok(sim, provider)).is_success
    assert len(await recorded(sim)) == len(PROVIDERS)
    assert [s["account"] for s in await recorded(sim, account="webex")] == ["webex"]
    assert [s["provider"] for s in await recorded(sim, provider="bird")] == ["bird"]
    cleared = await sim.delete("/_sim/sends")
    assert cleared.json() == {"cleared": len(PROVIDERS)}
    assert await recorded(sim) == []


# --- send APIs: credentials ------------------------------------------------------------------


UNAUTHORIZED = {"requestError": {"serviceException": {"messageId": "UNAUTHORIZED",
                                                      "text": "Invalid login details"}}}


@pytest.mark.parametrize("headers", [{}, {"authorization": "App wrong-key"},
                                     {"authorization": "Basic aWI6aWI="}])
async def test_infobip_rejects_bad_credentials(sim: httpx.AsyncClient,
                                               headers: dict[str, str]) -> None:
    response = await sim.post("/infobip/messages-api/1/messages", json=infobip_send(),
                              headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert await recorded(sim) == []


async def test_infobip_picks_the_account_by_api_key(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/infobip/messages-api/1/messages",
                              json=infobip_send("WHATSAPP", "38733000111"),
                              headers={"authorization": "App ibwa-api-key"})
    assert response.status_code == 200
    assert [s["account"] for s in await recorded(sim)] == ["ib-wa"]


async def test_omnichat_rejects_bad_credentials_and_foreign_application(
        sim: httpx.AsyncClient) -> None:
    path = "/infobip-omnichat/omnichat/1/applications/{key}/integrations/FACEBOOK/message"
    body = {"to": USER_KEY, "message": {"type": "TEXT", "text": "Hi"}}
    wrong = await sim.post(path.format(key="APPKEY1"), json=body,
                           headers={"authorization": _basic("omni-user", "nope")})
    assert wrong.status_code == 401 and wrong.json() == UNAUTHORIZED
    missing = await sim.post(path.format(key="APPKEY1"), json=body)
    assert missing.status_code == 401
    foreign = await sim.post(path.format(key="OTHER"), json=body,
                             headers={"authorization": _basic("omni-user", "omni-password")})
    assert foreign.status_code == 403
    assert foreign.json()["requestError"]["serviceException"]["messageId"] == "FORBIDDEN"


async def test_bird_rejects_bad_key_and_foreign_channel(sim: httpx.AsyncClient) -> None:
    path = f"/bird/workspaces/{WS}/channels/{{ch}}/messages"
    wrong = await sim.post(path.format(ch=CH), json=bird_send(),
                           headers={"authorization": "AccessKey wrong"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "NotAuthenticated"
    bearer = await sim.post(path.format(ch=CH), json=bird_send(),
                            headers={"authorization": "Bearer bird-access-key"})
    assert bearer.status_code == 401
    foreign = await sim.post(path.format(ch="ch-other"), json=bird_send(),
                             headers={"authorization": "AccessKey bird-access-key"})
    assert foreign.status_code == 403 and foreign.json()["code"] == "Forbidden"


@pytest.mark.parametrize(("headers", "code"), [({}, "7002"), ({"key": "wrong"}, "7001")])
async def test_webex_refuses_with_http_200_error_body(sim: httpx.AsyncClient,
                                                      headers: dict[str, str], code: str) -> None:
    response = await sim.post("/webex/resources/v1/messaging", json=webex_send(),
                              headers=headers)
    assert response.status_code == 200
    error = response.json()["response"]
    assert isinstance(error, dict) and error["code"] == code and error["transid"]
    assert await recorded(sim) == []


async def test_ubiqio_token_and_bearer_checks(sim: httpx.AsyncClient) -> None:
    bad = await sim.post("/ubiqio/mvapi/auth/token",
                         json={"clientId": "client-1", "clientSecret": "wrong"})
    assert bad.status_code == 401
    assert bad.json() == {"error": "Check your account key and secret"}
    for header in ({}, {"authorization": "Bearer not-a-jwt"}):
        response = await sim.post("/ubiqio/mvapi/message/send", json=ubiqio_send(),
                                  headers=header)
        assert response.status_code == 401 and "error" in response.json()
    config = ubiqio.Outbound.model_validate(ACCOUNTS["ubiqio"]["outbound"])
    expired = ubiqio._token(config, now=time.time() - 2 * ubiqio.TOKEN_TTL_S)
    response = await sim.post("/ubiqio/mvapi/message/send", json=ubiqio_send(),
                              headers={"authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    forged = ubiqio._token(ubiqio.Outbound.model_validate(
        {**ACCOUNTS["ubiqio"]["outbound"], "client_secret": "guessed"}), now=None)
    response = await sim.post("/ubiqio/mvapi/message/send", json=ubiqio_send(),
                              headers={"authorization": f"Bearer {forged}"})
    assert response.status_code == 401


# --- send APIs: validation -------------------------------------------------------------------


async def test_infobip_validation_error_names_violations(sim: httpx.AsyncClient) -> None:
    body = infobip_send()
    body["messages"][0]["destinations"] = []
    response = await sim.post("/infobip/messages-api/1/messages", json=body,
                              headers={"authorization": "App ib-api-key"})
    assert response.status_code == 400
    error = response.json()
    assert error["errorCode"] == "E400"
    assert error["violations"][0]["property"] == "messages[0].destinations"


@pytest.mark.parametrize(("content", "where"), [
    ({"body": {"type": "TEXT"}}, "content.body.text"),
    ({"body": {"type": "TEXT", "text": ""}}, "content.body.text"),
    ({"body": {"type": "TEXT", "text": "Continue?"},
      "buttons": [{"type": "REPLY", "text": "Yes"}]}, "content.buttons[0].postbackData"),
    ({"body": {"type": "TEXT", "text": "Continue?"},
      "buttons": [{"type": "REPLY", "postbackData": "yes"}]}, "content.buttons[0].text"),
    ({"body": {"type": "TEXT", "text": "Continue?"},
      "buttons": [{"text": "Yes", "postbackData": "yes"}]}, "content.buttons[0].type"),
])
async def test_infobip_refuses_content_the_schema_requires(sim: httpx.AsyncClient,
                                                           content: dict[str, Any],
                                                           where: str) -> None:
    # Seed 003: a TEXT body's `text`, and each button's `type`, `text` and `postbackData`,
    # are required; a client leaving one out must not pass against the simulator.
    body = infobip_send("WHATSAPP")
    body["messages"][0]["content"] = content
    response = await sim.post("/infobip/messages-api/1/messages", json=body,
                              headers={"authorization": "App ib-api-key"})
    assert response.status_code == 400
    assert [v["property"] for v in response.json()["violations"]] == [f"messages[0].{where}"]
    assert await recorded(sim) == []


async def test_omnichat_buttons_limited_to_three(sim: httpx.AsyncClient) -> None:
    buttons = [{"type": "POSTBACK", "text": str(i), "payload": str(i)} for i in range(4)]
    response = await sim.post(
        "/infobip-omnichat/omnichat/1/applications/APPKEY1/integrations/FACEBOOK/message",
        json={"to": USER_KEY, "message": {"type": "BUTTONS", "text": "Pick", "buttons": buttons}},
        headers={"authorization": _basic("omni-user", "omni-password")})
    assert response.status_code == 400
    assert response.json()["requestError"]["serviceException"]["messageId"] == "BAD_REQUEST"


async def test_bird_validation_is_422_invalid_payload(sim: httpx.AsyncClient) -> None:
    response = await sim.post(f"/bird/workspaces/{WS}/channels/{CH}/messages",
                              json={"receiver": {"contacts": []}, "body": {"type": "text"}},
                              headers={"authorization": "AccessKey bird-access-key"})
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "InvalidPayload"
    assert set(error["details"]) == {"receiver.contacts", "body"}


@pytest.mark.parametrize("count", [10, 11])
async def test_bird_takes_at_most_ten_images(sim: httpx.AsyncClient, count: int) -> None:
    # Seed 001: "it is possible to send up to an array of 10 media URLs".
    body = bird_send()
    body["body"] = {"type": "image", "image": {
        "images": [{"mediaUrl": f"https://media.test/{n}.png"} for n in range(count)]}}
    response = await sim.post(f"/bird/workspaces/{WS}/channels/ch-mms/messages", json=body,
                              headers={"authorization": "AccessKey birdmms-access-key"})
    if count <= 10:
        assert response.status_code == 202
        return
    assert response.status_code == 422
    assert set(response.json()["details"]) == {"body"}
    assert await recorded(sim) == []


@pytest.mark.parametrize("item", [{"mediaUrl": "https://media.test/doc"},
                                  {"mediaUrl": "https://media.test/doc", "contentType": ""}])
async def test_bird_file_needs_content_type(sim: httpx.AsyncClient, item: dict[str, str]) -> None:
    # Bird's schema requires a file item's contentType, as the real API's 422 says.
    body = bird_send()
    body["body"] = {"type": "file", "file": {"files": [item]}}
    response = await sim.post(f"/bird/workspaces/{WS}/channels/ch-mms/messages", json=body,
                              headers={"authorization": "AccessKey birdmms-access-key"})
    assert response.status_code == 422
    assert response.json()["details"] == {"body": ["file.files items need contentType"]}
    assert await recorded(sim) == []


@pytest.mark.parametrize(("body", "code"), [
    ({"deliverychannel": "sms"}, "7003"),
    (webex_send(sender="SOMEONE-ELSE"), "7004"),
    # Seed 002: `type` is "1" (text), "2" (flash), "3" (binary, hex in `body`) or "4"
    (webex_sms(type="unicode"), "7004"),
    (webex_sms(type="3"), "7003"),
    # Seed 002: `text` holds at most 1024 characters
    (webex_sms(text="x" * 1025), "7004"),
])
async def test_webex_validation_errors(sim: httpx.AsyncClient, body: dict[str, Any],
                                       code: str) -> None:
    response = await sim.post("/webex/resources/v1/messaging", json=body,
                              headers={"key": "webex-service-key"})
    assert response.status_code == 200 and response.json()["response"]["code"] == code


async def test_webex_takes_a_text_of_1024_characters(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/webex/resources/v1/messaging", json=webex_sms(text="é" * 1024),
                              headers={"key": "webex-service-key"})
    assert response.json()["response"][0]["code"] == "1001"


async def test_webex_invalid_json_is_7000(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/webex/resources/v1/messaging", content=b"{nope",
                              headers={"key": "webex-service-key"})
    assert response.json()["response"]["code"] == "7000"


@pytest.mark.parametrize("changes", [
    {"templateId": "other"}, {"accountId": "acc-999"}, {"channel": "MMS"}, {"toNumber": ""},
    # `message` is required for an MMS too (seed 000)
    {"channel": "MMS", "message": "", "imageUrl": "https://media.test/a.jpg"},
])
async def test_ubiqio_validation_errors(sim: httpx.AsyncClient, changes: dict[str, Any]) -> None:
    token = await ubiqio_token(sim)
    response = await sim.post("/ubiqio/mvapi/message/send", json=ubiqio_send(**changes),
                              headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json()["error"]
    assert await recorded(sim) == []


async def test_ubiqio_mms_carries_an_image_and_its_message(sim: httpx.AsyncClient) -> None:
    token = await ubiqio_token(sim)
    response = await sim.post("/ubiqio/mvapi/message/send",
                              json=ubiqio_send(channel="MMS", message="Our shop",
                                               imageUrl="https://media.test/a.jpg"),
                              headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    [send] = await recorded(sim)
    assert send["channel"] == "mms"


# --- faults ----------------------------------------------------------------------------------


async def add_fault(sim: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    response = await sim.post("/_sim/faults", json=spec)
    assert response.status_code == 201, response.text
    fault: dict[str, Any] = response.json()["fault"]
    return fault


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("mode", "status"), [("http_500", 500), ("http_503", 503),
                                              ("http_429", 429)])
async def test_http_faults_fail_count_sends_then_stop(sim: httpx.AsyncClient, provider: str,
                                                      mode: str, status: int) -> None:
    # That status on the wire, also from Webex, which answers its own errors in an HTTP 200.
    await add_fault(sim, provider=provider, mode=mode, count=2, retry_after_s=3)
    for _ in range(2):
        response = await send_ok(sim, provider)
        assert response.status_code == status, response.text
        if status == 429:
            assert response.headers["retry-after"] == "3"
    assert await recorded(sim) == []
    assert (await send_ok(sim, provider)).is_success
    assert len(await recorded(sim)) == 1
    assert (await sim.get("/_sim/faults")).json() == {"faults": []}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_http_400_fault_is_the_providers_bad_request(sim: httpx.AsyncClient,
                                                           provider: str) -> None:
    # An HTTP 400 from every provider, with its error body (Webex: code 7004): see send.json.
    await add_fault(sim, provider=provider, mode="http_400")
    response = await send_ok(sim, provider)
    expected = SEND[provider]["bad_request"]
    assert response.status_code == expected["status"]
    assert contains(response.json(), expected.get("json", {})), response.text
    assert await recorded(sim) == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rejected_fault_is_the_providers_refusal_in_a_2xx(sim: httpx.AsyncClient,
                                                               provider: str) -> None:
    # The refusals a client could mistake for acceptances, having a 2xx status: Infobip's
    # REJECTED status group, Bird's rejected status, a Webex error code, Ubiqio's success:
    # false. See each send.json.
    await add_fault(sim, provider=provider, mode="rejected")
    response = await send_ok(sim, provider)
    expected = SEND[provider]["rejected"]
    assert response.is_success and response.status_code == expected["status"]
    assert contains(response.json(), expected["json"]), response.text
    assert await recorded(sim) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_sender_reads_each_rejected_answer_as_a_refusal(provider: str) -> None:
    answer = SIMULATED[provider].rejected()
    response = httpx.Response(answer.status_code, headers=answer.headers.raw,
                              content=bytes(answer.body))
    with pytest.raises(SendError) as caught:
        provider_module("consumers.outbound", provider).read_response(response)
    assert (caught.value.retryable, caught.value.maybe_sent) == (False, False)


@pytest.mark.parametrize("provider", ["infobip", "infobip-omnichat"])
@pytest.mark.parametrize(("mode", "group"), [("undeliverable", "UNDELIVERABLE"),
                                             ("expired", "EXPIRED")])
async def test_an_undelivered_fault_is_infobips_final_status_in_a_2xx(
        sim: httpx.AsyncClient, provider: str, mode: str, group: str) -> None:
    # Infobip's send answer may carry any status group; these two are final, like REJECTED:
    # the sender must not report such a message accepted.
    await add_fault(sim, provider=provider, mode=mode)
    response = await send_ok(sim, provider)
    assert response.is_success
    message = response.json()["messages"][0] if provider == "infobip" else response.json()
    assert message["status"]["groupName"] == group
    assert await recorded(sim) == []
    with pytest.raises(SendError) as caught:
        provider_module("consumers.outbound", provider).read_response(response)
    assert (caught.value.retryable, caught.value.maybe_sent) == (False, False)
    assert caught.value.code is not None and caught.value.code.startswith(group)


async def test_fault_targets_one_account(sim: httpx.AsyncClient) -> None:
    await add_fault(sim, account="ib-wa", mode="http_503")
    assert (await send_ok(sim, "infobip")).status_code == 200  # account "ib": not affected
    response = await sim.post("/infobip/messages-api/1/messages",
                              json=infobip_send("WHATSAPP", "38733000111"),
                              headers={"authorization": "App ibwa-api-key"})
    assert response.status_code == 503


async def test_faults_do_not_bypass_auth(sim: httpx.AsyncClient) -> None:
    await add_fault(sim, provider="infobip", mode="http_500")
    response = await sim.post("/infobip/messages-api/1/messages", json=infobip_send())
    assert response.status_code == 401
    assert len((await sim.get("/_sim/faults")).json()["faults"]) == 1


async def test_slow_fault_delays_but_succeeds_and_records(
        sim: httpx.AsyncClient, sim_app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
    await add_fault(sim, provider="bird", mode="slow", delay_s=0.2)
    recorder = sim_app.state.simulator.recorder
    waits: list[tuple[float, int]] = []  # (seconds asked for, sends recorded by then)

    async def sleep(delay: float) -> None:
        waits.append((delay, len(recorder.find())))
        await asyncio.sleep(0)

    monkeypatch.setattr(simulator_app, "asyncio", ModuleWith(asyncio, sleep=sleep))
    response = await send_ok(sim, "bird")
    assert response.status_code == 202
    assert waits == [(0.2, 1)]  # the answer waited delay_s, the send already recorded
    assert len(await recorded(sim)) == 1


async def test_timeout_fault_never_answers_but_stays_cancellable(
        sim: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    await add_fault(sim, provider="webex", mode="timeout")
    waits: list[float] = []
    cancelled: list[float] = []

    async def sleep(delay: float) -> None:  # no answer comes unless the wait is cancelled
        waits.append(delay)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(delay)
            raise

    monkeypatch.setattr(simulator_app, "asyncio", ModuleWith(asyncio, sleep=sleep))
    async with asyncio.timeout(30):  # only so that a handler ignoring the cancel cannot hang
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(send_ok(sim, "webex"), 0.3)
    assert len(waits) == 1 and cancelled == waits, "the wait went on after the client gave up"
    assert await recorded(sim) == []
    monkeypatch.undo()
    assert (await send_ok(sim, "webex")).json()["response"][0]["code"] == "1001"


async def test_fault_api_validates_lists_and_clears(sim: httpx.AsyncClient) -> None:
    bad = await sim.post("/_sim/faults", json={"mode": "explode"})
    assert bad.status_code == 400
    unknown = await sim.post("/_sim/faults", json={"mode": "http_500", "provider": "nope"})
    assert unknown.status_code == 400
    # A misspelt account is refused as /_sim/inbound refuses it, not kept to never fire.
    no_account = await sim.post("/_sim/faults", json={"mode": "http_500", "account": "nope"})
    assert no_account.status_code == 404
    assert no_account.json()["error"] == "unknown_account"
    assert no_account.json()["message"].startswith("no account 'nope'; accounts: ")
    fault = await add_fault(sim, mode="http_500", count=5)
    assert fault["remaining"] == 5
    listed = (await sim.get("/_sim/faults")).json()["faults"]
    assert [f["id"] for f in listed] == [fault["id"]]
    assert (await sim.delete("/_sim/faults")).json() == {"cleared": 1}
    assert (await send_ok(sim, "infobip")).status_code == 200


# --- status webhooks normalize ---------------------------------------------------------------


def _normalize(provider: str, account: str, body: bytes) -> list[MessageEvent]:
    return normalize(WebhookRequest(provider=provider, account=account, body=body,
                                    received_at=datetime.now(UTC), raw_id="raw-1"))


def _lifecycle(app: Starlette, response: httpx.Response) -> list[MessageEvent]:
    """Normalize the status webhooks the simulator built for the send just made."""
    assert response.is_success, response.text
    send: ReceivedSend = app.state.simulator.recorder.find()[-1]
    provider = SIMULATED[send.provider]
    at = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    events: list[MessageEvent] = []
    for hook in provider.status_webhooks(send, at=at, step=timedelta(seconds=1)):
        produced = _normalize(send.provider, send.account, hook.body)
        assert len(produced) == 1, hook.json()
        events.extend(produced)
    for event in events:
        assert event.type is EventType.STATUS
        assert event.message_id == send.message.message_id
    return events


@pytest.mark.parametrize("case", SENDS, ids=[case.id for case in SENDS])
async def test_send_case(case: Fixture, sim: httpx.AsyncClient, sim_app: Starlette) -> None:
    spec = case.spec
    response = await post_send(sim, spec)
    assert response.status_code == spec["answer"]["status"]
    assert contains(response.json(), spec["answer"].get("json", {})), response.text
    [send] = await recorded(sim)
    assert (send["provider"], send["account"], send["path"], send["body"]) == (
        case.provider, spec["account"], spec["request"]["path"], spec["request"]["json"])
    if "events" not in spec:
        return
    events = _lifecycle(sim_app, response)
    assert len(events) == len(spec["events"])
    for event, want in zip(events, spec["events"], strict=True):
        assert {key: event.to_dict()[key] for key in want} == want
    times = [event.occurred_at for event in events if event.occurred_at is not None]
    assert len(times) == len(events) and times == sorted(times)


# --- inbound webhooks normalize --------------------------------------------------------------


INBOUND_CASES = [(name, None) for name in ACCOUNTS] + [
    (name, postback) for setup in SETUP.values() for name, postback in setup["postbacks"].items()]
NO_POSTBACKS = [name for setup in SETUP.values() for name in setup["refuses_postbacks"]]


@pytest.mark.parametrize(("name", "postback"), INBOUND_CASES)
def test_inbound_webhook_normalizes(name: str, postback: str | None) -> None:
    account = _account(name)
    sender = USER_KEY if account.provider == "infobip-omnichat" else USER
    inbound = Inbound(sender=sender, text="Hello there", message_id="in-1", postback=postback)
    hook = SIMULATED[account.provider].inbound_webhook(
        account, inbound, at=datetime(2026, 3, 1, tzinfo=UTC))
    [event] = _normalize(account.provider, name, hook.body)
    assert event.type is EventType.INBOUND
    assert event.from_ == sender
    assert event.text == "Hello there"
    assert event.postback == postback
    assert event.message_id == "in-1"


@pytest.mark.parametrize("name", NO_POSTBACKS)
def test_inbound_postback_refused_where_the_channel_has_no_buttons(name: str) -> None:
    account = _account(name)
    inbound = Inbound(sender=USER, text="Yes", message_id="in-2", postback="YES")
    with pytest.raises(InboundNotSupported):
        SIMULATED[account.provider].inbound_webhook(account, inbound, at=datetime.now(UTC))


async def test_sim_inbound_answers_202_with_the_body(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/_sim/inbound",
                              json={"account": "webex-wa", "from": USER, "text": "Potvrdi",
                                    "postback": "CONFIRM_17"})
    assert response.status_code == 202
    body = response.json()
    assert body["buttonPayload"] == "CONFIRM_17" and body["waid"] == USER
    [event] = _normalize("webex", "webex-wa", response.content)
    assert event.postback == "CONFIRM_17"


@pytest.mark.parametrize(("payload", "status"), [
    ({"account": "nobody", "from": USER, "text": "x"}, 404),
    ({"account": "bird", "from": USER}, 400),
    ({"account": "bird", "from": USER, "text": "x", "postback": "p"}, 400),
])
async def test_sim_inbound_errors(sim: httpx.AsyncClient, payload: dict[str, Any],
                                  status: int) -> None:
    response = await sim.post("/_sim/inbound", json=payload)
    assert response.status_code == status
    assert response.json()["error"] and response.json()["message"]


@pytest.mark.parametrize(("query", "status", "error", "message"), [
    ({"account": "demo-infobp"}, 404, "unknown_account", "no account 'demo-infobp'; accounts: "),
    ({"provider": "infobib"}, 400, "unknown_provider", "unknown provider 'infobib'; providers: "),
])
async def test_sim_sends_refuses_a_name_it_does_not_know(
        sim: httpx.AsyncClient, query: dict[str, str], status: int, error: str,
        message: str) -> None:
    # An empty list: read as "nothing was sent", a bot that did not answer.
    response = await sim.get("/_sim/sends", params=query)
    assert response.status_code == status and response.json()["error"] == error
    assert response.json()["message"].startswith(message)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/_sim/send", 404), ("GET", "/_sim/inbound", 405), ("POST", "/infobip/nope", 404)])
async def test_an_endpoint_it_does_not_serve_is_a_json_error_naming_those_it_does(
        sim: httpx.AsyncClient, method: str, path: str, status: int) -> None:
    # Starlette's plain "Not Found" named neither the path nor the endpoints there are.
    response = await sim.request(method, path)
    assert response.status_code == status
    assert response.json()["error"] == "http_error"
    message = response.json()["message"]
    assert f"{method} {path}; served: /_sim/sends, /_sim/inbound, /_sim/faults" in message


@pytest.mark.parametrize("field", ["channel", "payload"])
async def test_sim_inbound_refuses_a_field_it_does_not_take(sim: httpx.AsyncClient,
                                                            field: str) -> None:
    # It was dropped: the message went out without the button or on another channel than asked.
    response = await sim.post("/_sim/inbound", json={"account": "webex-wa", "from": USER,
                                                     "text": "Menu", field: "MENU"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request",
                               "message": f"unknown field {field!r}: it takes account, from, "
                                          "text, postback and to (the message comes on the "
                                          "account's channel)"}


# --- webhook delivery to ingest --------------------------------------------------------------


class FakeIngest:
    """Stands in for ingest: checks each webhook's auth like ingest does, then normalizes it."""

    def __init__(self, accounts: Accounts, fail_first: int = 0, hold_s: float = 0) -> None:
        self.accounts = accounts
        self.fail_first = fail_first
        self.hold_s = hold_s  # answer this late: what piles up meanwhile shows batching
        self.calls = 0
        self.bodies: list[Any] = []
        self.events: list[MessageEvent] = []
        self.rejected: list[str] = []
        self.app = Starlette(routes=[Route("/webhooks/{provider}/{account}", self.receive,
                                           methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        self.calls += 1
        if self.calls <= self.fail_first:
            return JSONResponse({"error": "try later"}, status_code=503)
        provider, name = request.path_params["provider"], request.path_params["account"]
        account = self.accounts.get(provider, name)
        body = await request.body()
        assert account is not None
        try:
            verify(SignedRequest(method="POST", url=str(request.url), query=request.url.query,
                                 headers=dict(request.headers), body=body, now=time.time()),
                   account.auth)
        except AuthError as exc:
            self.rejected.append(exc.args[0])
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        self.events.extend(_normalize(provider, name, body))
        self.bodies.append(orjson.loads(body))
        await asyncio.sleep(self.hold_s)
        return JSONResponse({"ok": True})


async def _run(app: Starlette,
               exercise: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    """Run the app's lifespan (webhook workers) around `exercise`, then let webhooks drain."""
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        await exercise(client)
        await app.state.simulator.dispatcher.drain()


async def test_webhooks_reach_ingest_signed_and_in_order() -> None:
    accounts = _accounts()
    ingest = FakeIngest(accounts)
    app = create_simulator_app(accounts, INGEST, status_delay_s=0.01,
                               transport=httpx.ASGITransport(app=ingest.app))

    async def exercise(client: httpx.AsyncClient) -> None:
        for provider in PROVIDERS:
            assert (await send_ok(client, provider)).is_success
        inbound = await client.post("/_sim/inbound",
                                    json={"account": "ubiqio", "from": USER, "text": "STOP"})
        assert inbound.status_code == 202

    await _run(app, exercise)
    assert ingest.rejected == []
    by_account: dict[str, list[Status | None]] = {}
    for event in ingest.events:
        if event.type is EventType.STATUS:
            by_account.setdefault(event.account, []).append(event.status)
    assert by_account == {send["account"]: [Status(event["status"]) for event in send["events"]]
                          for send in SEND.values()}
    inbound = [e for e in ingest.events if e.type is EventType.INBOUND]
    assert [(e.account, e.text) for e in inbound] == [("ubiqio", "STOP")]
    stats = app.state.simulator.dispatcher.to_dict()
    reports = sum(len(send["events"]) for send in SEND.values())
    assert (stats["sent"], stats["failed"], stats["pending"]) == (reports + 1, 0, 0)


WEBEX_URL = f"{INGEST}/webhooks/webex/webex"


@pytest.mark.parametrize(("path", "body", "key", "accepted"), [
    # Infobip and Webex add no credentials to a URL named in the send request ...
    ("/infobip/messages-api/1/messages", infobip_send(url=f"{INGEST}/webhooks/infobip/ib"),
     ("authorization", "App ib-api-key"), False),
    ("/webex/resources/v1/messaging", {**webex_send(), "notifyurl": WEBEX_URL},
     ("key", "webex-service-key"), False),
    # ... unless Webex is told which authentication profile to use.
    ("/webex/resources/v1/messaging", {**webex_send(), "notifyurl": WEBEX_URL,
                                       "notifyurlAuthId": "profile-1"},
     ("key", "webex-service-key"), True),
])
async def test_reports_to_a_url_named_by_the_send_carry_only_what_the_provider_adds(
        path: str, body: dict[str, Any], key: tuple[str, str], accepted: bool) -> None:
    accounts = _accounts()
    ingest = FakeIngest(accounts)
    app = create_simulator_app(accounts, "http://unused.test", status_delay_s=0.001,
                               transport=httpx.ASGITransport(app=ingest.app))

    async def exercise(client: httpx.AsyncClient) -> None:
        assert (await client.post(path, json=body, headers=dict([key]))).is_success

    await _run(app, exercise)
    assert ingest.calls > 0 and (ingest.rejected == []) is accepted
    assert bool(ingest.events) is accepted


async def test_infobip_delivery_reports_share_requests_when_they_pile_up() -> None:
    accounts = _accounts()
    ingest = FakeIngest(accounts, hold_s=0.05)
    app = create_simulator_app(accounts, INGEST, status_delay_s=0.001,
                               transport=httpx.ASGITransport(app=ingest.app))
    sends = 30

    async def exercise(client: httpx.AsyncClient) -> None:
        answers = await asyncio.gather(*(
            client.post("/infobip/messages-api/1/messages",
                        json=infobip_send("WHATSAPP", intermediate=True),
                        headers={"authorization": "App ib-api-key"}) for _ in range(sends)))
        assert all(answer.is_success for answer in answers)

    await _run(app, exercise)
    assert ingest.rejected == []
    delivery_requests = [body for body in ingest.bodies
                         if body["results"][0]["event"] == "DELIVERY"]
    reports = [report for body in delivery_requests for report in body["results"]]
    assert len(reports) == 3 * sends  # accepted, enroute, delivered: none lost, none doubled
    assert len({(r["messageId"], r["status"]["name"]) for r in reports}) == 3 * sends
    assert len(delivery_requests) < len(reports)  # batched ...
    assert max(len(body["results"]) for body in delivery_requests) <= 100
    assert all(r["event"] == "DELIVERY" for r in reports)  # ... never mixed with seen reports
    by_message: dict[str, list[Status | None]] = {}
    for event in ingest.events:
        by_message.setdefault(event.message_id or "", []).append(event.status)
    assert len(by_message) == sends
    assert all(statuses == [Status.ACCEPTED, Status.SENT, Status.DELIVERED, Status.SEEN]
               for statuses in by_message.values())  # each message's reports in order
    stats = app.state.simulator.dispatcher.to_dict()
    assert (stats["sent"], stats["failed"], stats["pending"]) == (4 * sends, 0, 0)


async def test_webhooks_are_retried_then_dropped_and_counted() -> None:
    accounts = _accounts()
    ingest = FakeIngest(accounts, fail_first=2)
    app = create_simulator_app(accounts, INGEST, status_delay_s=0,
                               retry=RetryPolicy(attempts=3, backoff_s=0.01),
                               transport=httpx.ASGITransport(app=ingest.app))

    async def exercise(client: httpx.AsyncClient) -> None:
        assert (await send_ok(client, "infobip")).is_success

    await _run(app, exercise)
    stats = (await _stats(app))
    assert (stats["sent"], stats["failed"], stats["retried"]) == (1, 0, 2)
    assert [e.status for e in ingest.events] == [Status.DELIVERED]

    ingest.fail_first, ingest.calls = 10**6, 0  # ingest never recovers this time
    await _run(app, exercise)
    stats = await _stats(app)
    assert (stats["sent"], stats["failed"]) == (1, 1)
    assert stats["recent"][-1]["outcome"] == "failed"
    assert stats["recent"][-1]["attempts"] == 3


async def _stats(app: Starlette) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim") as client:
        stats: dict[str, Any] = (await client.get("/_sim/webhooks")).json()
        return stats


async def test_no_ingest_url_skips_webhooks(sim: httpx.AsyncClient) -> None:
    assert (await send_ok(sim, "bird")).is_success
    stats = (await sim.get("/_sim/webhooks")).json()
    assert (stats["sent"], stats["skipped"]) == (0, 3)


async def test_health_lists_accounts_and_unservable_ones() -> None:
    broken = {**ACCOUNTS, "half": {"provider": "bird", "auth": ACCOUNTS["bird"]["auth"],
                                   "outbound": {"base_url": "http://sim/bird"}}}
    app = create_simulator_app(parse_accounts({"accounts": broken}), None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim") as client:
        health = (await client.get("/_sim/health")).json()
        inbound = await client.post("/_sim/inbound",
                                    json={"account": "half", "from": USER, "text": "x"})
    assert len(health["accounts"]) == len(broken)
    assert set(health["problems"]) == {"half"}
    assert "access_key" in health["problems"]["half"]
    assert inbound.status_code == 409


async def test_a_webhook_only_account_is_said_to_have_no_outbound_table() -> None:
    # The demo file's webhook-only accounts: /_sim/inbound's 409 listed pydantic's
    # "outbound.access_key: Field required", and health listed them among those served.
    app = create_simulator_app(load_accounts(EXAMPLE_ACCOUNTS), None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim") as client:
        health = (await client.get("/_sim/health")).json()
        inbound = await client.post("/_sim/inbound", json={
            "account": "demo-messagebird", "from": USER, "text": "x"})
    assert inbound.status_code == 409 and inbound.json()["error"] == "cannot_simulate"
    error = inbound.json()["message"]
    assert error.startswith("account 'demo-messagebird' cannot be simulated: it has no "
                            "outbound table ([accounts.demo-messagebird.outbound])")
    assert "Field required" not in error
    served = {account["name"] for account in health["accounts"]}
    webhook_only = {account["name"] for account in health["webhook_only"]}
    assert {"demo-messagebird", "demo-bird-platform"} <= webhook_only
    assert "demo-infobip" in served and not served & webhook_only
    assert {"name": "demo-messagebird", "provider": "bird"} in health["webhook_only"]
    assert health["problems"] == {}


async def test_health_masks_the_password_of_the_ingest_url() -> None:
    """Anyone who reaches the simulator reads its health: a URL's credentials stay out."""
    app = create_simulator_app(parse_accounts({"accounts": ACCOUNTS}),
                               "https://hook:pr0xy-pass@ingest.example")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim") as client:
        health = (await client.get("/_sim/health")).json()
    assert health["ingest_url"] == "https://hook:***@ingest.example"
