"""Every provider fixture, signed and sent to a real ingest server, lands correctly in Kafka."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from switchboard.records import conversation_key, raw_body
from switchboard.topics import DEAD_LETTER, MESSAGE_INBOUND, MESSAGE_STATUS, RAW
from tests.fixtures import Fixture, comparable
from tests.integration.conftest import DEFAULT_ACCOUNT, IngestServer
from tests.integration.webhooks import FIXTURES, accounts_for, send_signed
from tests.kafka_helpers import TopicWatcher

CASES = [pytest.param(fixture, account,
                      id=fixture.id if account == DEFAULT_ACCOUNT[fixture.provider]
                      else f"{fixture.id}@{account}")
         for fixture in FIXTURES for account in accounts_for(fixture)]


def _headers(record: Any) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers}


@pytest.mark.parametrize(("fixture", "account"), CASES)
async def test_signed_fixture_lands_in_kafka(fixture: Fixture, account: str,
                                             ingest_server: IngestServer,
                                             kafka_bootstrap: str) -> None:
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        response = await send_signed(ingest_server, fixture, account, client)
        found = await watcher.records_since(before)

    spec = fixture.spec["request"]
    if spec.get("method") in ("GET", "HEAD") and not spec.get("query"):
        # A URL check (Webex, MessageBird): answered 200, nothing to keep.
        assert response.status_code == 200
        assert not found, f"a URL check published {list(found)}"
        return

    assert len(found.get(RAW.name, [])) == 1, "every authenticated request is kept raw"
    raw = orjson.loads(found[RAW.name][0].value)
    assert raw["provider"] == fixture.provider and raw["account"] == account
    assert raw_body(raw) == fixture.body()

    if "error" in fixture.spec:
        assert response.status_code in (400, 415), response.text
        assert response.json()["error"] in ("unprocessable_payload", "unsupported_media_type")
        dead = found.get(DEAD_LETTER.name, [])
        assert len(dead) == 1 and orjson.loads(dead[0].value)["payload"]["id"] == raw["id"]
        assert not found.get(MESSAGE_INBOUND.name) and not found.get(MESSAGE_STATUS.name)
        return

    assert response.status_code == 200, response.text
    expected = fixture.spec["events"]
    records = found.get(MESSAGE_INBOUND.name, []) + found.get(MESSAGE_STATUS.name, [])
    assert len(records) == len(expected)
    published = {orjson.loads(r.value)["id"]: r for r in records}
    for want in ({**event, "account": account} for event in expected):
        matches = [r for r in published.values()
                   if comparable(orjson.loads(r.value), keep_id=False)
                   == comparable(want, keep_id=False)]
        assert matches, f"no published event matches {want}"
        record = matches[0]
        event = orjson.loads(record.value)
        wanted_topic = MESSAGE_INBOUND if event["type"] == "message.inbound" else MESSAGE_STATUS
        assert record.topic == wanted_topic.name
        contact = event["from"] if event["direction"] == "inbound" else event["to"]
        assert record.key == conversation_key(fixture.provider, account, contact)
        headers = _headers(record)
        assert headers["ce_specversion"] == "1.0" and headers["ce_id"] == event["id"]
        assert headers["ce_type"] == f"dev.switchboard.{event['type']}.v1"
        assert headers["ce_source"] == f"/switchboard/{fixture.provider}/{account}"
        assert headers["content-type"] == "application/json"
        assert event["raw_id"] == raw["id"]
