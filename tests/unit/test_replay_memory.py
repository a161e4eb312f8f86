"""`switchboard replay` holds a window's letters a chunk at a time, whatever the window's
length: a day of the raw topic is millions of records. Kafka is not needed: the window is a
stand-in, and the letters are of a stage replay skips (no topic to look up)."""

from __future__ import annotations

import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from ingest.kept import Selection
from ingest.replay import Summary, replay


def window_of(count: int) -> Any:
    """read_window, of `count` dead letters made as they are read (not held by the test)."""
    async def window(*args: Any, **kwargs: Any) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        now_ms = int(time.time() * 1000)
        for offset in range(count):
            value = (b'{"id": "%s", "stage": "elsewhere", "provider": "bird", '
                     b'"account": "shop", "payload": {}}' % str(uuid.uuid4()).encode())
            yield ConsumerRecord("switchboard.dead-letter.v1", 0, offset, now_ms, 0, None,
                                 value, None, 0, len(value), [])
    return window


async def _replayed(monkeypatch: pytest.MonkeyPatch, count: int) -> Summary:
    monkeypatch.setattr("ingest.replay.read_window", window_of(count))
    return await replay("unused:9092", source="dead-letter", since_ms=None, until_ms=None,
                        selection=Selection(), dry_run=True, emit=lambda line: None)


async def test_a_long_window_is_replayed_in_memory_that_does_not_grow_with_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, every letter's id was kept to the end (to name the --id ones never met, also
    # without --id): about 130 bytes a letter, a gigabyte for a day of the raw topic at 100
    # requests a second. Here 10,000 letters, which held 1.3 MB so (0.16 MB without).
    await _replayed(monkeypatch, 500)  # what a first run imports and caches, not measured
    tracemalloc.start()
    try:
        summary = await _replayed(monkeypatch, 10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.counts == {"skipped": 10_000}
    assert peak < 700_000, peak


async def test_the_asked_for_ids_never_met_are_still_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingest.replay.read_window", window_of(10))
    summary = await replay("unused:9092", source="dead-letter", since_ms=None, until_ms=None,
                           selection=Selection(ids=frozenset({"dl-gone", "dl-lost"})),
                           dry_run=True, emit=lambda line: None)
    assert summary.ids_not_found == ["dl-gone", "dl-lost"]
