"""Record helpers that consumers rely on to read what producers wrote."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from switchboard.events import Direction, EventType, MessageEvent, Status
from switchboard.records import event_record, named_by_source, source_of


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("ce_source", source_of("infobip", "acme").encode())], ("infobip", "acme")),
        ([("ce_id", b"x"), ("ce_source", b"/switchboard/bird/shop-eu")], ("bird", "shop-eu")),
        ([], ("", "")),  # an integrator's command without headers
        ([("ce_source", b"/elsewhere/infobip/acme")], ("", "")),
        ([("ce_source", b"/switchboard/infobip/")], ("", "")),
        ([("ce_source", b"/switchboard/infobip/acme/extra")], ("", "")),
        ([("ce_source", b"\xff\xfe")], ("", "")),
    ],
)
def test_named_by_source(headers: list[tuple[str, bytes]], expected: tuple[str, str]) -> None:
    assert named_by_source(headers) == expected


@pytest.mark.parametrize("account", ["acme shop", "50%-off", "café", "a?b#c"])
def test_a_source_is_a_uri_reference_for_any_account_name(account: str) -> None:
    # CloudEvents requires `source` to be a URI reference: a name with a space or '%' made
    # one a consumer's CloudEvents SDK refuses; consumers get the name back unchanged.
    source = source_of("ubiqio", account)
    assert source.isascii() and " " not in source and "?" not in source
    assert named_by_source([("ce_source", source.encode())]) == ("ubiqio", account)


@pytest.mark.parametrize(("kind", "status", "topic"), [
    (EventType.INBOUND, None, "switchboard.message.inbound.v1"),
    (EventType.STATUS, Status.DELIVERED, "switchboard.message.status.v1"),
])
def test_an_events_record_goes_to_its_types_topic_with_its_cloudevents_type(
        kind: EventType, status: Status | None, topic: str) -> None:
    at = datetime(2026, 2, 6, 14, 18, 31, 797000, tzinfo=UTC)
    event = MessageEvent.build(
        id=uuid.UUID(int=7, version=5), type=kind, provider="infobip", account="acme",
        channel="sms", direction=Direction.INBOUND if status is None else Direction.OUTBOUND,
        received_at=at, raw_id="raw-1", message_id="m-1", from_="+41790000001",
        to="+41790000002", status=status, occurred_at=at)
    record = event_record(event)
    contact = "+41790000001" if status is None else "+41790000002"
    assert (record.topic, record.key, record.value) == (
        topic, f"infobip|acme|{contact}".encode(), event.to_json())
    assert record.headers == [
        ("ce_specversion", b"1.0"), ("ce_id", str(event.id).encode()),
        ("ce_source", b"/switchboard/infobip/acme"),
        ("ce_type", f"dev.switchboard.{kind.value}.v1".encode()),
        ("ce_time", b"2026-02-06T14:18:31.797000Z"), ("content-type", b"application/json"),
        ("ce_subject", b"m-1"),
    ]
