"""The cycle collector is paused while a table loads (a record object per record read) and
given back as it was found, whether the load ends well or not."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition

import consumers.table
from consumers.table import CompactedTable


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def table(monkeypatch: pytest.MonkeyPatch, load_fails: bool, seen: list[bool]
          ) -> CompactedTable[bytes]:
    async def partitions(kafka: object, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, 0)]

    async def load(self: CompactedTable[bytes], tps: list[TopicPartition]) -> None:
        seen.append(gc.isenabled())
        if load_fails:
            raise ConnectionError("kafka went away")

    async def follow(self: CompactedTable[bytes]) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(consumers.table, "topic_partitions", partitions)
    monkeypatch.setattr(CompactedTable, "_load", load)
    monkeypatch.setattr(CompactedTable, "_follow_forever", follow)
    return CompactedTable("unused:9092", "t", bytes)


@pytest.mark.parametrize("load_fails", [False, True])
@pytest.mark.parametrize("enabled_before", [True, False])
def test_the_collector_is_paused_during_the_load_and_left_as_found(
        monkeypatch: pytest.MonkeyPatch, load_fails: bool, enabled_before: bool) -> None:
    (gc.enable if enabled_before else gc.disable)()
    seen: list[bool] = []
    loading = table(monkeypatch, load_fails, seen)

    async def start_and_stop() -> None:
        try:
            await loading.start()
        except ConnectionError:
            assert load_fails
        await loading.stop()

    asyncio.run(start_and_stop())
    assert seen == [False]
    assert gc.isenabled() is enabled_before
