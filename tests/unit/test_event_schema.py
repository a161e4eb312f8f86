from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from switchboard.commands import OutboundCommand, OutboundResult, ResultStatus, json_schemas
from switchboard.events import EventType, MessageEvent, Status, event_id, json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs/schema/message-event.v1.json"


def test_published_outbound_schema_is_current() -> None:
    path = SCHEMA_FILE.parent / "outbound.v1.json"
    assert path.read_bytes() == json_schemas(), (
        "docs/schema/outbound.v1.json is stale: run `switchboard schema --outbound > "
        "docs/schema/outbound.v1.json` and review the change (it is the public contract)"
    )


def test_published_json_schema_is_current() -> None:
    assert SCHEMA_FILE.read_bytes() == json_schema(), (
        "docs/schema/message-event.v1.json is stale: run `switchboard schema > "
        "docs/schema/message-event.v1.json` and review the change (it is the public contract)"
    )


def _event(**overrides: object) -> MessageEvent:
    fields: dict[str, object] = {
        "id": event_id(provider="bird", account="a", type=EventType.STATUS, message_id="m1",
                       status="delivered", occurred_at=None),
        "type": "message.status", "provider": "bird", "account": "a", "channel": "sms",
        "direction": "outbound", "status": "delivered", "from": "+15550001111",
        "received_at": datetime(2026, 1, 1, tzinfo=UTC), "raw_id": "r1",
        "price": {"amount": "0.0075", "currency": "EUR"},
    }
    fields.update(overrides)
    return MessageEvent.model_validate(fields)


def test_event_round_trips_through_json_with_from_alias_and_decimal_price() -> None:
    event = _event()
    data = event.to_dict()
    assert data["from"] == "+15550001111" and "from_" not in data
    assert data["price"] == {"amount": "0.0075", "currency": "EUR"}
    assert data["schema_version"] == 1
    assert MessageEvent.from_json(event.to_json()) == event


def test_status_events_need_a_status_and_inbound_events_none() -> None:
    with pytest.raises(ValidationError, match="needs a status"):
        _event(status=None)
    with pytest.raises(ValidationError, match="carries no status"):
        _event(type="message.inbound", direction="inbound")


def test_event_id_is_deterministic_and_sensitive_to_status() -> None:
    args = dict(provider="infobip", account="acme", type=EventType.STATUS, message_id="x",
                occurred_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert event_id(status=Status.SENT, **args) == event_id(status=Status.SENT, **args)  # type: ignore[arg-type]
    assert event_id(status=Status.SENT, **args) != event_id(status=Status.DELIVERED, **args)  # type: ignore[arg-type]


def test_raw_envelope_keeps_bodies_byte_exact() -> None:
    from switchboard.records import raw_body, raw_envelope

    for body in (b'{"a": "\\u00e9"}', "Zdravo 👋".encode(), b"\xff\xfe binary"):
        envelope = raw_envelope(raw_id="r", provider="bird", account="a", method="POST",
                                path="/", query="", content_type="", headers={}, body=body,
                                received_at=datetime(2026, 1, 1, tzinfo=UTC))
        assert raw_body(envelope) == body


def test_a_result_with_a_field_added_later_in_v1_still_reads() -> None:
    # Results were strict: a field a later sender adds within v1 would have made every
    # consumer parsing results with OutboundResult (or the published schema) fail on them.
    result = OutboundResult(command_id="c1", account="a", provider="infobip", to="+4179000111",
                            status=ResultStatus.ACCEPTED, attempts=1,
                            completed_at=datetime(2026, 1, 1, tzinfo=UTC))
    grown = orjson.loads(result.to_json()) | {"cost": {"amount": "0.01"}}
    assert OutboundResult.from_json(orjson.dumps(grown)) == result
    outbound = Draft202012Validator(orjson.loads(json_schemas()))
    assert list(outbound.iter_errors(grown)) == []
    assert list(outbound.iter_errors({**grown, "status": "queued"}))  # still a contract


def test_a_command_stays_strict() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        OutboundCommand.from_json(b'{"id": "c1", "account": "a", "to": "+4179000111", '
                                  b'"text": "hi", "txt": "typo"}')
