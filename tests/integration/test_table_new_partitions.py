"""A compacted table (the opt-out list, the sender's ledger) whose topic gains partitions while
it runs (kafka-topics.sh --alter --partitions), against the real broker: it read only the
partitions there were at its start, so a STOP written to a new one was never seen by a running
worker, and catch_up() said caught up without it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka import TopicPartition

from consumers.table import CompactedTable
from switchboard.producer import NEW_PARTITIONS_WITHIN_S
from tests.kafka_helpers import add_partitions, new_topic, produce_to_partition


async def test_a_running_table_reads_a_partition_added_to_its_topic(
        kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "table-partitions", 1, compacted=True)
    await produce_to_partition(kafka_bootstrap, topic, 0, (b"a", b"1"), (b"a", b"2"))
    table = CompactedTable(kafka_bootstrap, topic, int)
    applied: list[tuple[int, int]] = []
    apply = table._apply

    def counting(record: Any) -> None:
        applied.append((record.partition, record.offset))
        apply(record)

    table._apply = counting  # type: ignore[method-assign]
    await table.start()
    try:
        await add_partitions(kafka_bootstrap, topic, 3)
        await produce_to_partition(kafka_bootstrap, topic, 2, (b"stop", b"7"))
        # Without catch_up(): what the follower alone sees, within the bound README gives.
        async with asyncio.timeout(NEW_PARTITIONS_WITHIN_S + 10), table._advanced:
            await table._advanced.wait_for(lambda: table.get(b"stop") is not None)
        assert table.get(b"stop") == 7

        # The partitions it had are read on from where it was: read again from their start,
        # a key would show its older values for a while (an opt-out undone).
        await produce_to_partition(kafka_bootstrap, topic, 0, (b"a", b"3"))
        await table.catch_up(timeout_s=30)
        assert table.get(b"a") == 3
        assert [offset for partition, offset in applied if partition == 0] == [0, 1, 2]
        assert table._partitions == [TopicPartition(topic, p) for p in range(3)]
    finally:
        await table.stop()


async def test_catch_up_waits_for_a_partition_added_since_the_table_last_looked(
        kafka_bootstrap: str) -> None:
    # The sender catches its ledger up on each rebalance: a command another sender marked
    # sent in a partition this one has not noticed yet would be sent again.
    topic = await new_topic(kafka_bootstrap, "table-partitions", 1, compacted=True)
    table = CompactedTable(kafka_bootstrap, topic, int)
    await table.start()
    try:
        await add_partitions(kafka_bootstrap, topic, 2)
        await produce_to_partition(kafka_bootstrap, topic, 1, (b"sent", b"5"))
        await table.catch_up(timeout_s=30)  # at once: no waiting for a metadata refresh
        assert table.get(b"sent") == 5
    finally:
        await table.stop()


async def test_a_long_load_says_how_far_it_is(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A sender reads days of its ledger before it sends: minutes at 100 sends/s, silent before.
    monkeypatch.setattr("consumers.table.LOAD_PROGRESS_S", 0.0)  # every fetch
    topic = await new_topic(kafka_bootstrap, "table-progress", 2, compacted=True)
    for partition in (0, 1):
        await produce_to_partition(kafka_bootstrap, topic, partition,
                                   *((f"{partition}-{n}".encode(), b"1") for n in range(50)))
    table = CompactedTable(kafka_bootstrap, topic, int)
    with caplog.at_level(logging.INFO, logger="consumers.table"):
        await table.start()
    try:
        said = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
        loading = [m for m in said if m["event"] == "table loading" and m["topic"] == topic]
        assert loading, caplog.text
        assert all(m["offsets_to_read"] == 100 for m in loading)
        assert [m["offsets_read"] for m in loading][-1] == 100
        loaded = [m for m in said if m["event"] == "table loaded" and m["topic"] == topic]
        assert loaded[0]["entries"] == 100 and loaded[0]["load_s"] >= 0
        assert len(table) == 100
    finally:
        await table.stop()
