"""Each record of a webhook is measured once: ingest sizes the events against their topics'
limits as it builds them, and the producer places them by those sizes instead of measuring
again. Records published without sizes (replay, the workers) are measured as before."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ingest.app import create_app
from ingest.stored import event_records
from switchboard.accounts import parse_accounts
from switchboard.events import MessageEvent
from switchboard.producer import DurableProducer, PublishError
from switchboard.producer_placement import MAX_REQUEST_BYTES, SizedRecords, record_size
from switchboard.records import OutRecord
from switchboard.settings import Settings
from switchboard.topics import DEAD_LETTER, MESSAGE_STATUS, RAW

NOW = datetime.now(UTC)
AUTH = {"authorization": "Basic " + base64.b64encode(b"u:password-123").decode(),
        "content-type": "application/json"}


class ArgumentKeeper:
    """Stands in for DurableProducer: keeps each publish call's argument as it was given."""

    started = True

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def publish(self, records: Any) -> None:
        self.calls.append(records)

    async def stop(self) -> None:
        self.started = False


def status(n: int) -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.status", "provider": "infobip", "account": "a",
        "channel": "sms", "direction": "outbound", "to": "+4179000111", "status": "delivered",
        "message_id": f"m-{n}", "received_at": NOW, "raw_id": "r"})


def report(n: int) -> dict[str, Any]:
    return {"messageId": f"size-{uuid.uuid4()}-{n}", "destination": "41790001111",
            "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"}}


def test_sized_records_keep_each_record_with_its_size() -> None:
    first = OutRecord("t", b"value", b"key", [("h", b"v"), ("empty", None)])
    second = OutRecord("t", b"v")
    records = SizedRecords()
    records.add(first)  # measured here
    records.extend(SizedRecords([second], [7]))  # taken as given
    assert list(records) == [first, second] and len(records) == 2 and records[1] is second
    assert list(records.sizes) == [record_size(first), 7]
    with pytest.raises(ValueError, match="2 records but 1 sizes"):
        SizedRecords([first, second], [1])


def test_event_records_come_with_their_sizes() -> None:
    records = event_records([status(n) for n in range(5)], body_bytes=2000)
    assert isinstance(records, SizedRecords) and len(records) == 5
    assert list(records.sizes) == [record_size(record) for record in records]


def test_the_producer_places_records_by_the_sizes_given_and_measures_others() -> None:
    producer = DurableProducer("127.0.0.1:9")  # never started: placing needs no Kafka
    record = OutRecord("t", b"small", b"k")
    _, sizes = producer._placed([record], ["t"], [3])
    assert list(sizes) == [record_size(record)]
    # The size given is the one used: a record said to be too large is refused as one.
    with pytest.raises(PublishError, match=f"a record of {MAX_REQUEST_BYTES + 1} bytes"):
        producer._placed(SizedRecords([record], [MAX_REQUEST_BYTES + 1]), ["t"], [3])


@pytest.mark.parametrize(("body", "answer", "topics"), [
    (json.dumps({"results": [report(n) for n in range(3)]}).encode(), 200,
     [RAW.name] + [MESSAGE_STATUS.name] * 3),
    (b'{"results": [', 400, [RAW.name, DEAD_LETTER.name]),  # not JSON: kept as a dead letter
])
async def test_ingest_publishes_every_record_with_its_own_size(body: bytes, answer: int,
                                                               topics: list[str]) -> None:
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["password-123"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    producer = app.state.handler.producer = ArgumentKeeper()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        response = await client.post("/webhooks/infobip/acme", headers=AUTH, content=body)
    assert response.status_code == answer
    [records] = producer.calls
    assert isinstance(records, SizedRecords)
    assert [record.topic for record in records] == topics
    assert list(records.sizes) == [record_size(record) for record in records]
