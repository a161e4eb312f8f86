"""Limits, duplicates, every auth scheme, and the operational endpoints."""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
import orjson
import pytest

from ingest import normalizing
from ingest.signing import sign
from normalizers import WebhookRequest
from normalizers import normalize as real_normalize
from switchboard.events import MessageEvent
from switchboard.records import raw_body
from switchboard.topics import DEAD_LETTER, MESSAGE_STATUS, RAW
from tests.integration.conftest import IngestServer
from tests.integration.webhooks import basic, infobip_report
from tests.kafka_helpers import TopicWatcher


async def test_exact_retry_is_answered_but_not_published_again(
    ingest_server: IngestServer, kafka_bootstrap: str
) -> None:
    body = infobip_report(f"dup-{uuid.uuid4()}")
    url = ingest_server.url("infobip", "it-infobip")
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        first = await client.post(url, content=body, headers=basic())
        middle = await watcher.snapshot()
        second = await client.post(url, content=body, headers=basic("ib-old-secret"))
        assert await watcher.snapshot() == middle, "the retry was published again"
        found = await watcher.records_since(before)
        metrics = (await client.get(f"{ingest_server.base_url}/metrics")).text
    assert first.status_code == second.status_code == 200
    assert len(found[RAW.name]) == 1 and len(found[MESSAGE_STATUS.name]) == 1
    assert 'switchboard_ingest_duplicates_total{account="it-infobip",provider="infobip"}' in metrics


async def test_an_exact_retry_of_a_dead_lettered_request_gets_its_answer_but_no_letter(
    ingest_server: IngestServer, kafka_bootstrap: str
) -> None:
    # Providers retry a 4xx (Bird for hours): each retry of an unreadable payload was another
    # raw record and dead letter of the same bytes.
    body = f'{{"results": "unreadable {uuid.uuid4()}"}}'.encode()
    url = ingest_server.url("infobip", "it-infobip")
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        first = await client.post(url, content=body, headers=basic())
        middle = await watcher.snapshot()
        second = await client.post(url, content=body, headers=basic())
        assert await watcher.snapshot() == middle, "the retry was dead-lettered again"
        found = await watcher.records_since(before)
    assert first.status_code == second.status_code == 400
    assert second.json() == first.json()
    assert len(found[RAW.name]) == 1 and len(found[DEAD_LETTER.name]) == 1
    assert orjson.loads(found[DEAD_LETTER.name][0].value)["reason"] == first.json()["message"]


async def test_a_large_batch_is_normalized_off_the_event_loop(
    ingest_server: IngestServer, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Normalization of a large body is held until a small request has been answered: on the
    event loop that hold would stop the small request too (and end unreleased)."""
    held, release = threading.Event(), threading.Event()
    released: list[bool] = []

    def held_normalize(request: WebhookRequest) -> list[MessageEvent]:
        if len(request.body) >= normalizing.OFF_LOOP_BODY_BYTES:
            held.set()
            released.append(release.wait(timeout=10))
        return real_normalize(request)

    monkeypatch.setattr(normalizing, "normalize", held_normalize)
    large = infobip_report(f"large-{uuid.uuid4()}", count=200)
    assert len(large) >= normalizing.OFF_LOOP_BODY_BYTES
    url = ingest_server.url("infobip", "it-infobip")
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        large_answer = asyncio.create_task(client.post(url, content=large, headers=basic()))
        for _ in range(200):
            if held.is_set():
                break
            await asyncio.sleep(0.05)
        assert held.is_set(), "the large batch never reached normalization"
        small = await client.post(url, content=infobip_report(f"small-{uuid.uuid4()}"),
                                  headers=basic())
        release.set()
        assert (await large_answer).status_code == small.status_code == 200
        found = await watcher.records_since(before)
    assert released == [True], "normalization held the event loop"
    assert len(found[MESSAGE_STATUS.name]) == 201


@pytest.mark.parametrize(
    ("account", "scheme", "secret"),
    [
        ("it-messagebird", "messagebird-jwt", "mb-signing-key-0123456789abcdef-32"),
        ("it-messagebird-v1", "messagebird-v1", "mb-v1-signing-key"),
        ("it-bird-platform", "standard-webhooks", "whsec_aXQtYmlyZC1wbGF0Zm9ybS1zZWNyZXQ="),
        ("it-bird", "bird-signature", "bird-signing-key"),
    ],
)
async def test_every_bird_scheme_authenticates_a_get_status_report(
    account: str, scheme: str, secret: str, ingest_server: IngestServer, kafka_bootstrap: str
) -> None:
    query = (f"id={uuid.uuid4().hex}&reference=ref-{account}&recipient=31612345678"
             "&status=delivered&statusDatetime=2026-01-11T09%3A17%3A11%2B00%3A00")
    url = f"{ingest_server.url('bird', account)}?{query}"
    headers = sign(scheme, secret, url=url, body=b"", query=query)
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        response = await client.get(url, headers=headers)
        found = await watcher.records_since(before)
    assert response.status_code == 200, response.text
    event = orjson.loads(found[MESSAGE_STATUS.name][0].value)
    assert event["status"] == "delivered" and event["correlation_id"] == f"ref-{account}"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"x" * (1_048_576 + 1), "application/json", 413),
        (b"%PDF-1.4", "application/pdf", 415),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),
        (b'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
         b"<results>&b;</results>", "application/xml", 400),
        (b"<" * 3000, "application/xml", 400),
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded", 400),
        # Under the size cap, but six times larger once JSON-escaped into the raw record:
        # Kafka refused it, so the answer was 503 and the provider's retries never ended.
        (b'{"results":"' + b"\x01" * 600_000 + b'"}', "application/json", 400),
    ],
    ids=["too-large", "pdf", "deep-json", "xml-entities", "broken-xml", "binary-form",
         "control-characters"],
)
async def test_hostile_bodies_get_a_clear_4xx_never_500(
    body: bytes, content_type: str, status: int, ingest_server: IngestServer,
    kafka_bootstrap: str
) -> None:
    headers = basic() | {"content-type": content_type}
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        response = await client.post(ingest_server.url("infobip", "it-infobip"), content=body,
                                     headers=headers)
        found = await watcher.records_since(before)
        health = await client.get(f"{ingest_server.base_url}/healthz")
    assert response.status_code == status, response.text
    assert response.json()["error"] and response.json()["message"]
    assert health.status_code == 200
    if status == 413:
        assert not found, "an over-size body is refused before it is read"
    else:  # authenticated: kept raw, explained in the dead-letter topic
        assert len(found[RAW.name]) == 1 and len(found[DEAD_LETTER.name]) == 1
        assert raw_body(orjson.loads(found[RAW.name][0].value)) == body
        reason = orjson.loads(found[DEAD_LETTER.name][0].value)["reason"]
        assert reason == response.json()["message"]


async def test_health_readiness_and_metrics(ingest_server: IngestServer) -> None:
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{ingest_server.base_url}/healthz")
        ready = await client.get(f"{ingest_server.base_url}/readyz")
        metrics = await client.get(f"{ingest_server.base_url}/metrics")
        missing = await client.get(f"{ingest_server.base_url}/nothing-here")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    for name in ("switchboard_ingest_requests_total", "switchboard_ingest_events_total",
                 "switchboard_ingest_publish_seconds_bucket",
                 "switchboard_ingest_duplicates_total", "switchboard_ingest_dead_letters_total"):
        assert name in metrics.text
    assert missing.status_code == 404
    assert missing.json() == {"error": "http_error", "message": "Not Found"}
