"""A legacy MessageBird Conversations API webhook (Bird family B), signed as MessageBird signs it
(the legacy SMS API's schemes, messagebird-jwt and the older messagebird-v1), lands in Kafka.
The fixture suite sends family B with bird-signature only (tests/integration/webhooks.py)."""

from __future__ import annotations

import copy
import uuid

import httpx
import orjson
import pytest

from switchboard.topics import DEAD_LETTER, MESSAGE_INBOUND, MESSAGE_STATUS
from tests.fixtures import Fixture, load_fixtures
from tests.integration.conftest import IngestServer, account_with
from tests.integration.webhooks import send_signed
from tests.kafka_helpers import TopicWatcher


def _fixture_with_id(name: str, message_id: str) -> Fixture:
    """A bird fixture whose message has `message_id`: the broker is shared, so this test
    finds its own events by it."""
    [fixture] = [f for f in load_fixtures("bird") if f.name == name]
    spec = copy.deepcopy(fixture.spec)
    spec["request"]["body"]["message"]["id"] = message_id
    return Fixture(fixture.provider, fixture.name, fixture.path, spec)


@pytest.mark.parametrize("scheme", ["messagebird-jwt", "messagebird-v1"])
@pytest.mark.parametrize(("name", "topic"), [
    ("conversations_whatsapp_inbound_text", MESSAGE_INBOUND.name),
    ("conversations_whatsapp_outbound_read", MESSAGE_STATUS.name),
])
async def test_a_signed_conversations_webhook_lands_in_kafka(
        scheme: str, name: str, topic: str, ingest_server: IngestServer,
        kafka_bootstrap: str) -> None:
    message_id = f"conv-{uuid.uuid4().hex}"
    fixture = _fixture_with_id(name, message_id)
    watched = (MESSAGE_INBOUND.name, MESSAGE_STATUS.name, DEAD_LETTER.name)
    async with TopicWatcher(kafka_bootstrap, watched) as watcher, \
            httpx.AsyncClient(timeout=10) as client:
        before = await watcher.snapshot()
        response = await send_signed(ingest_server, fixture, account_with("bird", scheme),
                                     client)
        found = await watcher.records_since(before)

    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}  # not the legacy SMS API's text `OK`
    mine = [(record.topic, orjson.loads(record.value)) for records in found.values()
            for record in records if message_id.encode() in record.value]
    assert [(topic_, event["message_id"]) for topic_, event in mine] == [(topic, message_id)]
