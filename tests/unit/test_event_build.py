"""The fast constructors (`MessageEvent.build` and friends) and `event_id` against pydantic and
`uuid.uuid5`: the same events, the same errors, the same ids, whatever the values."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from switchboard.events import (
    EVENT_ID_NAMESPACE,
    Direction,
    ErrorInfo,
    EventType,
    Media,
    MessageEvent,
    Price,
    ProviderStatus,
    Status,
    event_id,
)

MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WHEN = datetime(2024, 2, 6, 17, 18, 29, 797000, tzinfo=UTC)
EVENT_UUID = uuid.UUID("04dba3ec-1d4a-5969-af48-1d2c257edeb7")


class _Str(str):
    pass


class _Int(int):
    pass


class _When(datetime):
    pass


class _Id(uuid.UUID):
    pass


# Values of every kind a buggy normalizer could pass: valid ones, coercible ones (pydantic's lax
# mode turns them into valid values) and invalid ones.
_ANY: list[Any] = [
    None, "", "x", _Str("x"), 0, 1, -1, _Int(3), True, 1.5, [], {}, b"x", WHEN, EVENT_UUID,
    str(EVENT_UUID), EventType.STATUS, Status.SENT, "delivered", "message.inbound",
    _When(2024, 1, 1, tzinfo=UTC), _Id(int=7)]
_OPTIONAL_STR = st.sampled_from([None, "a", "+41793026727", "zdravo 👋", *_ANY])

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from([EVENT_UUID, uuid.UUID(int=5), str(EVENT_UUID), "nope", *_ANY]),
    "type": st.sampled_from([EventType.STATUS, EventType.INBOUND, "message.status", *_ANY]),
    "provider": st.sampled_from(["infobip", "bird", *_ANY]),
    "account": st.sampled_from(["acme", *_ANY]),
    "channel": st.sampled_from(["sms", "whatsapp", "in-app", "a.b_c", "9", "SMS", "sms\n", "-x",
                                "_x", "sms ", "smś", "", *_ANY]),
    "direction": st.sampled_from([Direction.OUTBOUND, Direction.INBOUND, "inbound", *_ANY]),
    "received_at": st.sampled_from([WHEN, datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z",
                                    datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=2))),
                                    *_ANY]),
    "raw_id": st.sampled_from(["raw-0001", *_ANY]),
    "message_id": _OPTIONAL_STR,
    "correlation_id": _OPTIONAL_STR,
    "from_": _OPTIONAL_STR,
    "to": _OPTIONAL_STR,
    "status": st.sampled_from([None, Status.DELIVERED, Status.UNKNOWN, "seen", *_ANY]),
    "error": st.sampled_from([None, ErrorInfo(code="5", description="d", permanent=True),
                              {"code": "1"}, *_ANY]),
    "provider_status": st.sampled_from([None, ProviderStatus(name="DELIVERED"), {"name": "x"},
                                        *_ANY]),
    "text": _OPTIONAL_STR,
    "media": st.sampled_from([(), [], [Media(url="http://x/a.png")],
                              (Media(url="u", content_type="image/*"), Media(url="v")),
                              [{"url": "u"}], ["u"], None, "x", {}]),
    "postback": _OPTIONAL_STR,
    "in_reply_to": _OPTIONAL_STR,
    "segments": st.sampled_from([None, 0, 1, 7, -1, _Int(2), True, 1.0, "3", 2**70, *_ANY]),
    "price": st.sampled_from([None, Price(amount=Decimal("0.0075"), currency="EUR"),
                              {"amount": "1", "currency": "X"}, *_ANY]),
    "occurred_at": st.sampled_from([None, WHEN, datetime(2019, 11, 9), "2019-11-09T16:00:00Z",
                                    *_ANY]),
}

VALID: dict[str, Any] = {
    "id": EVENT_UUID, "type": EventType.STATUS, "provider": "infobip", "account": "acme",
    "channel": "whatsapp", "direction": Direction.OUTBOUND, "received_at": WHEN,
    "raw_id": "raw-0001", "status": Status.DELIVERED,
}


def _outcome(make: Any, fields: dict[str, Any]) -> tuple[str, Any]:
    try:
        event = make(**fields)
    except ValidationError as exc:
        return "invalid", [(e["loc"], e["type"]) for e in exc.errors()]
    return "valid", (event.__dict__, event.model_fields_set, event.model_dump_json(by_alias=True),
                     repr(event))


def _by_pydantic(**fields: Any) -> MessageEvent:
    # What build() stands for: every field given explicitly, media defaulting to none.
    every: dict[str, Any] = {name: None for name in MessageEvent.model_fields}
    every.update(schema_version=1, media=[])
    every.update(fields)
    return MessageEvent(**every)


@MANY
@given(st.fixed_dictionaries({}, optional=FIELDS))
def test_build_is_pydantic_validation(changes: dict[str, Any]) -> None:
    fields = {**VALID, **changes}
    if fields.get("type") == EventType.INBOUND and "status" not in changes:
        fields["status"] = None
    assert _outcome(MessageEvent.build, fields) == _outcome(_by_pydantic, fields)


_TEXT = st.none() | st.text(max_size=8)
# Values of the exact types normalizers pass, mostly valid: what the fast path takes.
EXACT: dict[str, st.SearchStrategy[Any]] = {
    "id": st.uuids(),
    "type": st.sampled_from(EventType),
    "provider": st.text(max_size=8),
    "account": st.text(max_size=8),
    "channel": st.sampled_from(["sms", "whatsapp", "in-app", "x.y_z"]) | st.text(max_size=4),
    "direction": st.sampled_from(Direction),
    "received_at": st.datetimes(timezones=st.just(UTC)),
    "raw_id": st.text(max_size=8),
    "message_id": _TEXT,
    "correlation_id": _TEXT,
    "from_": _TEXT,
    "to": _TEXT,
    "status": st.none() | st.sampled_from(Status),
    "error": st.none() | st.builds(ErrorInfo.build, code=_TEXT, description=_TEXT,
                                   permanent=st.booleans()),
    "provider_status": st.none() | st.builds(ProviderStatus.build, name=_TEXT, code=_TEXT),
    "text": _TEXT,
    "media": st.lists(st.builds(Media.build, url=st.text(max_size=8), caption=_TEXT),
                      max_size=2),
    "postback": _TEXT,
    "in_reply_to": _TEXT,
    "segments": st.none() | st.integers(min_value=-2, max_value=2**70),
    "price": st.none() | st.just(Price(amount=Decimal("0.0075"), currency="EUR")),
    "occurred_at": st.none() | st.datetimes(timezones=st.just(UTC)),
}


@MANY
@given(st.fixed_dictionaries(EXACT))
def test_build_of_exact_types_is_pydantic_validation(fields: dict[str, Any]) -> None:
    assert _outcome(MessageEvent.build, fields) == _outcome(_by_pydantic, fields)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"channel": "SMS"}, "string_pattern_mismatch"),
        ({"channel": "sms\n"}, "string_pattern_mismatch"),
        ({"channel": ""}, "string_pattern_mismatch"),
        ({"segments": -1}, "greater_than_equal"),
        ({"status": None}, "value_error"),  # a status event needs a status
        ({"type": EventType.INBOUND, "direction": Direction.INBOUND}, "value_error"),
        ({"message_id": 5}, "string_type"),
        ({"provider_status": "DELIVERED"}, "model_type"),
        ({"media": [None]}, "model_type"),
    ],
)
def test_build_refuses_what_pydantic_refuses(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as raised:
        MessageEvent.build(**{**VALID, **changes})
    assert raised.value.errors()[0]["type"] == error


def test_build_stores_every_field_in_model_order() -> None:
    # A field added to the model must be added to build() too (and so to its fast path).
    assert set(inspect.signature(MessageEvent.build).parameters) == (
        set(MessageEvent.model_fields) - {"schema_version"})
    event = MessageEvent.build(**VALID)
    assert list(event.__dict__) == list(MessageEvent.model_fields)
    assert event.model_fields_set == set(MessageEvent.model_fields)
    assert event.media == [] and event.schema_version == 1
    assert MessageEvent.from_json(event.to_json()) == event


def test_build_copies_the_media_list() -> None:
    media = [Media.build(url="http://x/a.png")]
    event = MessageEvent.build(**{**VALID, "type": EventType.INBOUND, "status": None,
                                  "direction": Direction.INBOUND, "media": media})
    media.append(Media.build(url="http://x/b.png"))
    assert len(event.media) == 1


def test_to_json_is_model_dump_json() -> None:
    event = MessageEvent.build(**{**VALID, "price": Price(amount=Decimal("0.10"), currency="EUR"),
                                  "text": "zdravo 👋 \x00\u2028", "segments": 2})
    assert event.to_json() == event.model_dump_json(by_alias=True).encode()


_PART: st.SearchStrategy[Any] = st.sampled_from(
    [None, "", "a", "5", "zdravo 👋", 5, True, 1.5, _Str("a"), [], {"a": 1}])


@MANY
@given(code=_PART, name=_PART, group=_PART, description=_PART)
def test_provider_status_build_is_pydantic_validation(code: Any, name: Any, group: Any,
                                                      description: Any) -> None:
    fields = {"code": code, "name": name, "group": group, "description": description}
    assert _outcome(ProviderStatus.build, fields) == _outcome(ProviderStatus, fields)


@MANY
@given(code=_PART, description=_PART,
       permanent=st.sampled_from([True, False, None, 0, 1, "true", "no", 2, []]))
def test_error_info_build_is_pydantic_validation(code: Any, description: Any,
                                                 permanent: Any) -> None:
    fields = {"code": code, "description": description, "permanent": permanent}
    assert _outcome(ErrorInfo.build, fields) == _outcome(ErrorInfo, fields)


@MANY
@given(url=_PART, content_type=_PART, caption=_PART)
def test_media_build_is_pydantic_validation(url: Any, content_type: Any, caption: Any) -> None:
    fields = {"url": url, "content_type": content_type, "caption": caption}
    assert _outcome(Media.build, fields) == _outcome(Media, fields)


def _uuid5_event_id(*, provider: str, account: str, type: EventType, message_id: str | None,
                    status: str | None, occurred_at: datetime | None,
                    fallback: str = "") -> uuid.UUID:
    """The documented recipe, with the standard library's uuid5."""
    parts = (provider, account, type.value, message_id or "", status or "",
             occurred_at.isoformat() if occurred_at else "", fallback)
    return uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts))


@MANY
@given(provider=st.text(), account=st.text(), type=st.sampled_from(EventType),
       message_id=st.none() | st.text(), status=st.none() | st.text(),
       occurred_at=st.none() | st.datetimes(timezones=st.just(UTC)) | st.datetimes()
       | st.datetimes(timezones=st.sampled_from([timezone(timedelta(hours=-2)),
                                                 timezone(timedelta(0)), UTC]))
       .map(lambda moment: moment.replace(fold=1)),
       fallback=st.text())
def test_event_id_is_uuid5_of_the_documented_parts(**parts: Any) -> None:
    derived = event_id(**parts)
    expected = _uuid5_event_id(**parts)
    assert derived == expected and str(derived) == str(expected)
    assert derived.version == 5 and derived.variant == uuid.RFC_4122
    assert derived.is_safe is expected.is_safe
    assert hash(derived) == hash(expected)


def test_event_id_keeps_its_published_value() -> None:
    # infobip/messages-delivery-whatsapp: ids are deterministic and consumers dedupe on them.
    assert event_id(provider="infobip", account="acme", type=EventType.STATUS,
                    message_id="ABEGVUGWh3gEAgo-sLTvmQCS5kwjhsy", status="DELIVERED_TO_HANDSET",
                    occurred_at=WHEN) == EVENT_UUID


def test_build_of_a_subclass_is_validated() -> None:
    class Extended(MessageEvent):
        note: str = "default"

    event = Extended.build(**VALID)
    assert type(event) is Extended and event.note == "default"
    assert event.model_fields_set == set(MessageEvent.model_fields)


@pytest.mark.parametrize("model", [ErrorInfo, ProviderStatus, Media])
def test_part_builders_take_every_field(model: Any) -> None:
    assert set(inspect.signature(model.build).parameters) == set(model.model_fields)
