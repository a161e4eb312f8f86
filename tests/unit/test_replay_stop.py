"""A stop asked of `switchboard replay` (Ctrl-C, SIGTERM, the reader of its output going away)
starts nothing new: the records of a fetch already in hand are not handled, and no further
chunk is handed to Kafka, so every letter published has its line and none other was
published (README, *Dead letters and replay*). Kafka is not needed: the window and the
producer are stand-ins, the letters are normalized as replay does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from ingest.kept import Selection
from ingest.replay import CHUNK_LETTERS, Summary, replay
from switchboard.records import OutRecord, raw_envelope
from tests.fakes import KeepingProducer
from tests.fixtures import load_fixtures

[INBOUND] = [f for f in load_fixtures() if f.id == "bird/channels_sms_inbound"]
# More than a chunk, fewer than one fetch (read_window asks for up to 500 at a time).
LETTERS = 2 * CHUNK_LETTERS + 50


def letters(count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Dead letters of webhooks ingest could not normalize then, which it can now."""
    request = INBOUND.request(raw_id="raw-0")
    now_ms = int(time.time() * 1000)
    records = []
    for offset in range(count):
        envelope = raw_envelope(
            raw_id=f"raw-{offset}", provider=request.provider, account=request.account,
            method=request.method, path="/webhooks", query=request.query,
            content_type=request.content_type, headers=request.headers, body=request.body,
            received_at=request.received_at)
        value = orjson.dumps({"id": f"dl-{offset}", "stage": "normalize", "reason": "why",
                              "provider": request.provider, "account": request.account,
                              "time": "2026-11-24T12:00:00+00:00", "payload": envelope})
        records.append(ConsumerRecord("switchboard.dead-letter.v1", 0, offset, now_ms, 0, None,
                                      value, None, 0, len(value), []))
    return records


class Publishing(KeepingProducer):
    """Kafka as replay sees it: each publish waits for its acknowledgement."""

    async def start(self) -> None:
        pass

    async def publish(self, records: list[OutRecord]) -> None:
        await asyncio.sleep(0)
        await super().publish(records)


def fetched_at_once(batch: list[ConsumerRecord[bytes, bytes]],
                    fetched: asyncio.Event) -> Callable[..., AsyncIterator[Any]]:
    """read_window once `fetched` is set: a whole fetch in hand, given without a wait."""
    async def window(*args: Any, **kwargs: Any) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        await fetched.wait()
        for record in batch:
            yield record
    return window


async def replayed(monkeypatch: pytest.MonkeyPatch, stop: asyncio.Event,
                   emit: Callable[[bytes], None], fetched: asyncio.Event
                   ) -> tuple[Summary, Publishing]:
    producer = Publishing()
    monkeypatch.setattr("ingest.replay.DurableProducer", lambda *args, **kwargs: producer)
    monkeypatch.setattr("ingest.replay.read_window", fetched_at_once(letters(LETTERS), fetched))
    summary = await replay("unused:9092", source="dead-letter", since_ms=None, until_ms=None,
                           selection=Selection(), dry_run=False, emit=emit, stop=stop)
    return summary, producer


async def test_a_stop_asked_as_a_fetch_arrives_publishes_none_of_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in the same turn of the loop as the fetch's answer: the reading ran on through
    the fetch's records and handed their first chunk to Kafka before it was cancelled."""
    stop, fetched = asyncio.Event(), asyncio.Event()
    lines: list[bytes] = []

    def ctrl_c() -> None:
        stop.set()
        fetched.set()

    asyncio.get_running_loop().call_soon(ctrl_c)
    summary, producer = await replayed(monkeypatch, stop, lines.append, fetched)
    assert summary.stopped
    assert (lines, producer.published, summary.counts) == ([], [], {})


async def test_a_reader_gone_during_a_publish_stops_before_the_next_chunk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`replay | head`: the first line written to no reader asks the stop, while the rest of
    the fetch is in hand; only the chunk being published then is stored (and counted)."""
    stop, fetched = asyncio.Event(), asyncio.Event()
    fetched.set()
    lines: list[bytes] = []

    def reader_gone_at_once(line: bytes) -> None:
        lines.append(line)  # counted, as _Output counts a line it could not write
        stop.set()

    summary, producer = await replayed(monkeypatch, stop, reader_gone_at_once, fetched)
    assert summary.stopped
    assert len(lines) == CHUNK_LETTERS
    assert summary.counts == {"replayed": CHUNK_LETTERS}
    assert len(producer.published) == summary.records
    assert {orjson.loads(line)["id"] for line in lines} == {
        f"dl-{offset}" for offset in range(CHUNK_LETTERS)}


async def test_without_a_stop_the_whole_fetch_is_replayed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stop, fetched = asyncio.Event(), asyncio.Event()
    fetched.set()
    lines: list[bytes] = []
    summary, producer = await replayed(monkeypatch, stop, lines.append, fetched)
    assert not summary.stopped
    assert summary.counts == {"replayed": LETTERS}
    assert len(lines) == LETTERS
    assert len(producer.published) == summary.records > 0
