"""An exact repeat that comes while the first request is still being stored (a provider
retrying one it gave up waiting for) waits for it and is answered as its repeat: both were
stored, with the same event ids. Bounded: a 503 past the wait, and a first that kept nothing
(its 503) leaves the repeat to be stored in its place, never answered 2xx for nothing."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
from prometheus_client import REGISTRY

from switchboard.producer import PublishError
from switchboard.records import OutRecord
from switchboard.topics import DEAD_LETTER, RAW
from tests.fakes import KeepingProducer, infobip_ingest

PASSWORD = "password-123"
HEADERS = {"authorization": "Basic " + base64.b64encode(f"u:{PASSWORD}".encode()).decode(),
           "content-type": "application/json"}
DELIVERY = (b'{"results": [{"messageId": "m-in-flight", "to": "41793026727", "status": '
            b'{"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"}}]}')
UNREADABLE = b'{"results": "in flight, not a list"}'


class GatedProducer(KeepingProducer):
    """Kafka acknowledging the first publish only once the test opens the gate (or failing
    it, `fail_first`); every later one at once."""

    def __init__(self, *, fail_first: bool = False) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.calls = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def publish(self, records: list[OutRecord]) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            await self.gate.wait()
            if self.fail_first:
                raise PublishError("Kafka did not acknowledge within 5.0s")
        await super().publish(records)


async def _post(app: Any, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        return await client.post("/webhooks/infobip/acme", content=body, headers=HEADERS)


async def _first_then_repeat(app: Any, producer: GatedProducer,
                             body: bytes) -> tuple[asyncio.Task[httpx.Response],
                                                   asyncio.Task[httpx.Response]]:
    """The first request held in its publish, and its repeat sent, waiting (or, without the
    wait, publishing too) before the test goes on."""
    first = asyncio.create_task(_post(app, body))
    await asyncio.wait_for(producer.entered.wait(), 10)
    repeat = asyncio.create_task(_post(app, body))
    recent = app.state.handler.recent
    deadline = time.monotonic() + 10
    while producer.calls < 2 and not any(getattr(recent, "_storing", {}).values()) \
            and not repeat.done():
        assert time.monotonic() < deadline, "the repeat neither waited nor published"
        await asyncio.sleep(0.01)
    return first, repeat


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"provider": "infobip", "account": "acme",
                                            **labels}) or 0.0


async def test_a_repeat_during_the_first_s_publish_is_answered_as_its_repeat() -> None:
    producer = GatedProducer()
    app = infobip_ingest(producer, PASSWORD)
    duplicates = _count("switchboard_ingest_duplicates_total")
    first, repeat = await _first_then_repeat(app, producer, DELIVERY)
    producer.gate.set()
    answers = await asyncio.wait_for(asyncio.gather(first, repeat), 10)
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[1].content == answers[0].content
    # Stored once: both were, with the same event ids.
    assert [record.topic for record in producer.published] == [
        RAW.name, "switchboard.message.status.v1"]
    assert _count("switchboard_ingest_duplicates_total") == duplicates + 1


async def test_a_repeat_during_a_dead_letter_s_publish_gets_its_answer() -> None:
    producer = GatedProducer()
    app = infobip_ingest(producer, PASSWORD)
    first, repeat = await _first_then_repeat(app, producer, UNREADABLE)
    producer.gate.set()
    answers = await asyncio.wait_for(asyncio.gather(first, repeat), 10)
    assert [answer.status_code for answer in answers] == [400, 400]
    assert answers[1].json() == answers[0].json()
    assert [record.topic for record in producer.published] == [RAW.name, DEAD_LETTER.name]


async def test_a_repeat_of_a_request_kafka_did_not_store_is_stored_itself() -> None:
    # The first's 503 is not the repeat's 2xx: the repeat is kept in its place.
    producer = GatedProducer(fail_first=True)
    app = infobip_ingest(producer, PASSWORD)
    first, repeat = await _first_then_repeat(app, producer, DELIVERY)
    producer.gate.set()
    answers = await asyncio.wait_for(asyncio.gather(first, repeat), 10)
    assert [answer.status_code for answer in answers] == [503, 200]
    assert [record.topic for record in producer.published] == [
        RAW.name, "switchboard.message.status.v1"]
    # And what it stored is remembered: a third is a repeat of it.
    assert (await _post(app, DELIVERY)).status_code == 200
    assert len(producer.published) == 2


async def test_a_repeat_waits_no_longer_than_its_bound() -> None:
    producer = GatedProducer()
    app = infobip_ingest(producer, PASSWORD)
    app.state.handler.repeat_wait_s = 0.5
    first, repeat = await _first_then_repeat(app, producer, DELIVERY)
    answer = await asyncio.wait_for(repeat, 10)  # never a hang, whatever the first does
    assert answer.status_code == 503
    assert answer.json()["error"] == "storage_unavailable"
    assert answer.headers["retry-after"] == "5"
    assert not producer.published  # the repeat stored nothing of its own
    producer.gate.set()
    assert (await asyncio.wait_for(first, 10)).status_code == 200
    assert [record.topic for record in producer.published] == [
        RAW.name, "switchboard.message.status.v1"]


async def test_another_body_does_not_wait_for_one_being_stored() -> None:
    producer = GatedProducer()
    app = infobip_ingest(producer, PASSWORD)
    first = asyncio.create_task(_post(app, DELIVERY))
    await asyncio.wait_for(producer.entered.wait(), 10)
    other = await asyncio.wait_for(_post(app, DELIVERY + b" "), 10)
    assert other.status_code == 200
    producer.gate.set()
    assert (await asyncio.wait_for(first, 10)).status_code == 200
    assert len(producer.published) == 4
