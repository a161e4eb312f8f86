"""Sizing a request's records before Kafka sees them: no input may leave a provider retrying
a request Kafka always refuses, or build records without bound."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ingest.stored import (
    RECORD_ROOM_BYTES,
    Unstorable,
    event_records,
    fitted_raw,
)
from switchboard.events import MessageEvent
from switchboard.producer_placement import record_size
from switchboard.records import event_record, raw_body, raw_envelope, short
from switchboard.topics import MESSAGE_INBOUND, RAW

NOW = datetime.now(UTC)


def envelope(body: bytes) -> dict[str, Any]:
    return raw_envelope(raw_id="r", provider="ubiqio", account="a", method="POST",
                        path="/webhooks/ubiqio/a", query="", content_type="application/json",
                        headers={}, body=body, received_at=NOW)


def inbound(text: str, **fields: Any) -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "ubiqio", "account": "a",
        "channel": "sms", "direction": "inbound", "from": "+4179000111", "text": text,
        "received_at": NOW, "raw_id": "r", **fields})


def test_a_body_json_escaping_would_blow_up_is_kept_in_base64() -> None:
    body = b'{"message":"' + b"\x01" * 600_000 + b'"}'  # six bytes each once escaped
    kept, record = fitted_raw(envelope(body), NOW)
    assert kept["body_encoding"] == "base64" and raw_body(kept) == body
    assert record_size(record) <= RAW.max_message_bytes


def test_a_request_too_large_for_the_raw_topic_even_in_base64_is_refused() -> None:
    # The largest body the settings allow, next to a long query and two long kept headers
    # (uvicorn takes a URL or a header line of up to about 80 kB, and any number of them):
    # Kafka refused the raw record on every retry, so the provider got 503 for ever instead
    # of an answer it would not retry.
    body = b"\xff" * 1_500_000  # not UTF-8: base64
    large = {**envelope(body), "query": "q=" + "x" * 60_000,
             "headers": {"user-agent": "u" * 60_000, "x-forwarded-for": "1" * 60_000}}
    with pytest.raises(Unstorable, match=r"over the \d+-byte limit of switchboard\.raw"):
        fitted_raw(large, NOW)


def test_an_ordinary_body_stays_readable_text() -> None:
    kept, _ = fitted_raw(envelope(b'{"message":"hi"}'), NOW)
    assert (kept["body"], kept["body_encoding"]) == ('{"message":"hi"}', "utf-8")


def test_events_many_times_larger_than_their_body_are_refused_while_built() -> None:
    # A long field copied into each report of a batch: a 100 kB body, a 100 MB batch.
    events = [inbound("t" * 100_000)] * 1000
    with pytest.raises(Unstorable, match="repeated into every event"):
        event_records(events, body_bytes=100_000)


def test_an_event_over_its_topics_limit_is_refused() -> None:
    with pytest.raises(Unstorable, match=r"over the \d+-byte limit of switchboard.message.inbound"):
        event_records([inbound("\x01" * 200_000)], body_bytes=1_000_000)


def test_an_event_that_cannot_be_written_is_refused_not_raised() -> None:
    event = inbound("hi", price={"amount": Decimal("1e999999999999"), "currency": "EUR"})
    with pytest.raises(Unstorable, match="could not be serialized") as raised:
        event_records([event], body_bytes=100)
    assert raised.value.__cause__ is not None  # kept for the log


def test_a_batch_within_its_budget_is_written_whole() -> None:
    # Infobip's bucket: up to 100 reports of a few hundred bytes each in one request.
    events = [inbound(f"report {n}") for n in range(100)]
    assert len(event_records(events, body_bytes=30_000)) == 100


def test_reasons_are_bounded() -> None:
    assert len(short("x" * 10_000)) == 501 and short("fine") == "fine"


def test_an_event_whose_key_and_headers_take_it_over_its_topics_limit_is_refused() -> None:
    """The message id goes into the value and again into `ce_subject`, the contact into the
    key: a value under the limit is not yet a record Kafka takes (it would refuse it, and the
    provider would be answered 503 and retry it for days)."""
    event = inbound("hi", message_id="m" * 530_000)
    assert len(event.to_json()) < MESSAGE_INBOUND.max_message_bytes - RECORD_ROOM_BYTES
    assert record_size(event_record(event)) > MESSAGE_INBOUND.max_message_bytes
    with pytest.raises(Unstorable, match=r"over the \d+-byte limit of switchboard.message.inbound"):
        event_records([event], body_bytes=600_000)
