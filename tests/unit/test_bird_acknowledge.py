"""What ingest answers a Bird webhook: `OK` as text for the legacy SMS API, `{"ok":true}` for
the JSON APIs (B, C, D), by the family `normalize` read the webhook as. normalize hands it back
with the events; bird.acknowledge gives it for a repeat, from the request alone, and must agree.
It once decided by a shape check of its own: a JSON envelope posted as a form, read as a legacy
form, was answered `{"ok":true}`, and one after a UTF-8 byte order mark, read as its JSON API,
`OK`."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from normalizers import bird, get, normalize
from normalizers.base import DEFAULT_ACK, Normalized, WebhookRequest
from normalizers.registry import acknowledgement
from switchboard.events import EventType
from switchboard.providers import PROVIDERS
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
    ack = bird.normalize(fixture.request()).ack
    assert ack.body == FAMILY_ACKS[fixture.name.split("_")[0]]
    assert bird.acknowledge(fixture.request()) == ack


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
    assert events.ack.body == case.ack
    assert bird.acknowledge(request) == events.ack


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "bird"])
def test_a_plain_list_of_events_is_answered_with_the_providers_acknowledge(
        provider: str) -> None:
    """A provider whose answer does not depend on the body returns its events as a plain list,
    with a one-line acknowledge; Bird's answer comes with its events."""
    [fixture, *_] = [f for f in load_fixtures(provider) if f.spec.get("events")]
    request = fixture.request()
    events = normalize(request)
    assert not isinstance(events, Normalized)
    assert acknowledgement(request, events) == get(provider).acknowledge(request) == DEFAULT_ACK
    legacy = WebhookRequest(provider="bird", account=ACCOUNT, body=b"", received_at=RECEIVED_AT,
                            raw_id=RAW_ID, method="GET")
    assert acknowledgement(legacy, normalize(legacy)).body == LEGACY_ACK
