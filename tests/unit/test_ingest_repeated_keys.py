"""A key repeated in one JSON object (`{"status": "DELIVERED", "status": "FAILED"}`) has one
value wherever ingest reads the body: the last, as orjson keeps it. Signatures cover the bytes,
so a repeat is no way around them; what matters is that no reader (normalizer, acknowledgement,
signature check) sees another value than the rest. docs/events.md, Fields, says the rule."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ingest.app import create_app
from ingest.signing import sign
from normalizers import WebhookRequest, normalize
from switchboard.accounts import parse_accounts
from switchboard.events import MessageEvent
from switchboard.settings import Settings
from switchboard.topics import RAW
from tests.fakes import KeepingProducer
from tests.fixtures import ACCOUNT, RAW_ID, RECEIVED_AT

HUB_SECRET = "hub-secret-123"


def _events(provider: str, body: bytes,
            content_type: str = "application/json") -> list[MessageEvent]:
    return normalize(WebhookRequest(provider=provider, account=ACCOUNT, body=body,
                                    received_at=RECEIVED_AT, raw_id=RAW_ID,
                                    content_type=content_type, query="", method="POST"))


INFOBIP = (b'{"results": [{"messageId": "m", "status": {"groupName": "DELIVERED", '
           b'"groupName": "REJECTED"}%s}]}')
ONCE = b'{"results": [{"messageId": "m", "status": {"groupName": "REJECTED"}%s}]}'


@pytest.mark.parametrize("extra", [b"", b', "x": "\\ud83d"'],
                         ids=["orjson", "lone-surrogate-fallback"])
def test_a_repeated_json_key_is_read_as_its_last_value_and_the_same_event(extra: bytes) -> None:
    # A lone surrogate escape has the body read by the stdlib's parser instead (bodies.py):
    # it keeps the last value too. The event is the one the last value alone gives, id and
    # all: consumers deduplicating on the id see one report.
    [repeated] = _events("infobip", INFOBIP % extra)
    [once] = _events("infobip", ONCE % extra)
    assert repeated.status is not None and repeated.status.value == "rejected"
    assert repeated.id == once.id


def test_a_repeated_form_field_is_read_as_its_last_value() -> None:
    [event] = _events("ubiqio", b"status=delivered&messageId=m&status=failed",
                      "application/x-www-form-urlencoded")
    assert event.status is not None and event.status.value == "failed"


def _webex(status: bytes) -> bytes:
    return (b'{"deliveryInfoNotification":{"transid":"t-repeated","deliveryInfo":'
            b'{"deliveryStatus":%s}}}' % status)


async def _post_webex(body: bytes, signed: bytes) -> tuple[httpx.Response, KeepingProducer]:
    accounts = parse_accounts({"accounts": {"wx": {
        "provider": "webex", "auth": {"scheme": "hub-signature", "secrets": [HUB_SECRET]}}}})
    app: Any = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    headers = {"content-type": "application/json",
               **sign("hub-signature", HUB_SECRET, url="", body=signed)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        return await client.post("/webhooks/webex/wx", content=body, headers=headers), producer


async def test_a_signed_value_with_an_earlier_repeat_of_its_key_is_read_as_signed() -> None:
    # Webex signs its body compacted, and ingest tries the body written back compactly, which
    # keeps a repeated key's last value: the value read is the one the signature covers.
    response, producer = await _post_webex(_webex(b'"Delivered","deliveryStatus":"Failed"'),
                                           signed=_webex(b'"Failed"'))
    assert response.status_code == 200
    [event] = [MessageEvent.from_json(record.value) for record in producer.published
               if record.topic != RAW.name]
    assert event.status is not None and event.status.value == "failed"


async def test_an_unsigned_value_after_a_signed_one_of_its_key_is_refused() -> None:
    response, producer = await _post_webex(_webex(b'"Failed","deliveryStatus":"Delivered"'),
                                           signed=_webex(b'"Failed"'))
    assert response.status_code == 401
    assert not producer.published


def test_the_compacted_body_is_the_signed_one_only_with_the_last_value() -> None:
    # What the two tests above rest on, said directly.
    assert orjson.dumps(orjson.loads(_webex(b'"Delivered","deliveryStatus":"Failed"'))) \
        == _webex(b'"Failed"')


MB_SECRET = "signing-key-123"
STATUS_TWICE = "id=m-v1&recipient=31612345678&status=delivered&status=delivery_failed"


async def _get_messagebird_v1(query: str, signed: str) -> tuple[httpx.Response,
                                                                 KeepingProducer]:
    accounts = parse_accounts({"accounts": {"mb": {
        "provider": "bird", "auth": {"scheme": "messagebird-v1", "secrets": [MB_SECRET]}}}})
    app: Any = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    headers = sign("messagebird-v1", MB_SECRET, url="", body=b"", query=signed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        return await client.get(f"/webhooks/bird/mb?{query}", headers=headers), producer


@pytest.mark.parametrize(("query", "signed"), [
    (STATUS_TWICE, STATUS_TWICE),
    # Its repeats swapped: the same sorted query, so the same signature, and it was read as
    # `delivered` where the request as signed was read as `delivery_failed` (two events).
    ("id=m-v1&recipient=31612345678&status=delivery_failed&status=delivered", STATUS_TWICE),
    # The legacy reader lower-cases names: these are one field too.
    ("id=m-v1&recipient=31612345678&Status=delivery_failed&status=delivered",
     "id=m-v1&recipient=31612345678&status=delivered&Status=delivery_failed"),
], ids=["as-signed", "swapped", "swapped-case"])
async def test_a_messagebird_v1_query_field_repeated_with_other_values_is_refused(
        query: str, signed: str) -> None:
    # MessageBird's v1 signature is over the query sorted: not the order of a field's
    # repeats, which decides the value read (the last).
    response, producer = await _get_messagebird_v1(query, signed)
    assert response.status_code == 401
    assert "more than once" in response.json()["message"]
    assert not producer.published


@pytest.mark.parametrize("query", [
    "id=m-v1&recipient=31612345678&status=delivered&status=delivered",
    # Bird's one list in a query: each is a media item, whichever order they come in.
    "id=m-mms&originator=31612345678&recipient=25256&mediaUrls=https%3A%2F%2Fm.example%2Fa.jpg"
    "&mediaUrls=https%3A%2F%2Fm.example%2Fb.png",
], ids=["same-value", "media-urls"])
async def test_a_messagebird_v1_query_field_repeated_harmlessly_is_taken(query: str) -> None:
    response, producer = await _get_messagebird_v1(query, query)
    assert response.status_code == 200
    raw, event = producer.published  # stored: the request and its one event
    assert raw.topic == RAW.name and event.topic != RAW.name
