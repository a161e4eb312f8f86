"""What ingest answers a Bird webhook (bird.acknowledge): `OK` as text for the legacy SMS API,
`{"ok":true}` for the JSON APIs (B, C, D), by the family `normalize` read the webhook as. It
decided by a shape check of its own: a JSON envelope posted as a form, read as a legacy form,
was answered `{"ok":true}`, and one after a UTF-8 byte order mark, read as its JSON API, `OK`."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from normalizers import bird
from normalizers.base import DEFAULT_ACK, WebhookRequest
from switchboard.events import EventType
from tests.fixtures import ACCOUNT, RAW_ID, RECEIVED_AT, Fixture, load_fixtures

LEGACY_ACK = b"OK"
JSON_ACK = DEFAULT_ACK.body
FORM = "application/x-www-form-urlencoded"
BOM = b"\xef\xbb\xbf"
# By the family each fixture is of (its name's first word).
FAMILY_ACKS = {"legacy": LEGACY_ACK, "channels": JSON_ACK, "conversations": JSON_ACK,
               "platform": JSON_ACK}


def normalized(fixtures: list[Fixture]) -> list[Fixture]:
    return [fixture for fixture in fixtures if "events" in fixture.spec]


@pytest.mark.parametrize("fixture", normalized(load_fixtures("bird")), ids=lambda f: f.name)
def test_every_fixture_is_answered_as_its_family_expects(fixture: Fixture) -> None:
    assert bird.acknowledge(fixture.request()).body == FAMILY_ACKS[fixture.name.split("_")[0]]


def channels_body(name: str) -> bytes:
    [fixture] = [f for f in load_fixtures("bird") if f.name == name]
    return fixture.body()


# A Channels envelope whose text, read as a form, holds a legacy inbound SMS's fields.
ENVELOPE_AS_FORM = orjson.dumps({"service": "channels", "event": "sms.inbound", "payload": {
    "note": "&originator=31612345678&body=hi&id=mo-1&recipient=3197010260000&x="}})


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str
    ack: bytes
    method: str = "POST"
    query: str = ""


CASES = [
    Case("json envelope posted as a form: a legacy form", ENVELOPE_AS_FORM, FORM, LEGACY_ACK),
    Case("json envelope after a byte order mark", BOM + channels_body("channels_sms_inbound"),
         "application/json", JSON_ACK),
    Case("json envelope as text/plain", channels_body("channels_sms_inbound"), "text/plain",
         JSON_ACK),
    Case("json envelope without a content type", channels_body("channels_sms_inbound"), "",
         JSON_ACK),
    Case("legacy fields as json (Flow Builder)", orjson.dumps({
        "originator": "31612345678", "recipient": "3197010260000", "body": "hi", "id": "mo-1"}),
         "application/json", LEGACY_ACK),
    Case("legacy form without a content type",
         b"originator=31612345678&recipient=3197010260000&body=hi&id=mo-1", "", LEGACY_ACK),
    Case("legacy status report by get", b"", "", LEGACY_ACK, "GET",
         "id=m-1&recipient=31612345678&status=delivered&statusDatetime=2026-01-02T03:04:05Z"),
    Case("bare get checking the url", b"", "", LEGACY_ACK, "GET"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_answer_follows_the_family_the_webhook_was_read_as(case: Case) -> None:
    request = WebhookRequest(provider="bird", account=ACCOUNT, body=case.body,
                             received_at=RECEIVED_AT, raw_id=RAW_ID,
                             content_type=case.content_type, query=case.query,
                             method=case.method)
    events = bird.normalize(request)  # read, not refused: answered with this ack
    if case.method == "POST":
        assert [e.type for e in events] == [EventType.INBOUND]
    assert bird.acknowledge(request).body == case.ack
