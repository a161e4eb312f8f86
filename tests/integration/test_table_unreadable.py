"""A compacted table (the opt-out list, the sender's ledger) meeting a record aiokafka cannot
read, against the real broker: start-up failed with a UnicodeDecodeError traceback, naming
neither partition nor offset; a follower met one and retried it for ever, every 30 s."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from consumers.table import CompactedTable, UnreadableTableRecord
from consumers.workers import stopped_short
from switchboard.topics import OPT_OUTS, TopicSpec, ensure_topics
from tests.integration.processes import (
    killed_if_left,
    switchboard,
    wait_for_line,
    worker_environment,
)
from tests.kafka_helpers import new_topic, produce_to_partition, produce_unreadable_to_partition_1


async def test_a_table_that_cannot_be_read_stops_its_start_naming_the_record(
        kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "table-unreadable", 2, compacted=True)
    await produce_unreadable_to_partition_1(kafka_bootstrap, topic)
    table = CompactedTable(kafka_bootstrap, topic, int)

    with pytest.raises(UnreadableTableRecord) as stopped:
        await asyncio.wait_for(table.start(), 60)

    said = str(stopped.value)
    assert said.startswith(
        f"aiokafka cannot read the record at {topic} partition 1 offset 2 (a header key that "
        "is not UTF-8, there or before it in its producer's batch: 'utf-8' codec can't decode")
    assert said.endswith("this table is read from its start at every start, so no worker "
                         "reading it starts until that record is gone: see Troubleshooting "
                         "in the README")
    # `worker` says it in one line and exits 1, as for a record of its own topics.
    assert stopped_short(stopped.value) == said


async def test_a_follower_names_the_record_and_follows_the_other_partitions(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    topic = await new_topic(kafka_bootstrap, "table-unreadable", 2, compacted=True)
    table = CompactedTable(kafka_bootstrap, topic, int)
    await table.start()
    try:
        await produce_unreadable_to_partition_1(kafka_bootstrap, topic)
        await produce_to_partition(kafka_bootstrap, topic, 0, (b"other", b"7"))
        with pytest.raises(UnreadableTableRecord, match=f"{topic} partition 1 offset 2 "):
            await table.catch_up(timeout_s=30)
        assert table.get(b"k") == 1  # read up to the record it cannot read
        await produce_to_partition(kafka_bootstrap, topic, 0, (b"later", b"8"))
        async with asyncio.timeout(30), table._advanced:  # the other partitions go on
            await table._advanced.wait_for(lambda: table.get(b"later") is not None)
        assert table.get(b"other") == 7 and table.get(b"later") == 8
        assert caplog.text.count("table record cannot be read") == 1  # once, not every 30 s
    finally:
        await table.stop()


async def test_a_worker_whose_opt_out_list_cannot_be_read_says_so_in_one_line(
        kafka_bootstrap: str) -> None:
    prefix = f"it-table-unreadable-{uuid.uuid4().hex[:8]}."
    env = worker_environment(kafka_bootstrap, prefix) | {"SWITCHBOARD_TOPIC_PARTITIONS": "2"}
    await ensure_topics(kafka_bootstrap, partitions=2, replication_factor=1,
                        specs=(TopicSpec(prefix + OPT_OUTS.name, "test", OPT_OUTS.config),))
    await produce_unreadable_to_partition_1(kafka_bootstrap, prefix + OPT_OUTS.name)

    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "switchboard", "worker", "keywords"], env=env,
        capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: worker keywords stopped: aiokafka cannot read the record "
                            f"at {prefix}{OPT_OUTS.name} partition 1 offset 2 (")


async def test_a_running_worker_whose_opt_out_list_becomes_unreadable_stops_in_one_line(
        kafka_bootstrap: str) -> None:
    # The follower stopped reading the partition and the worker ran on, that partition of its
    # opt-out list frozen (later STOPs unseen) until its next start.
    prefix = f"it-table-follow-{uuid.uuid4().hex[:8]}."
    env = worker_environment(kafka_bootstrap, prefix) | {"SWITCHBOARD_TOPIC_PARTITIONS": "2",
                                                    "SWITCHBOARD_LOG_FORMAT": "json"}
    with killed_if_left(switchboard(env, "worker", "keywords")) as process:
        await asyncio.to_thread(wait_for_line, process, "worker started")
        await produce_unreadable_to_partition_1(kafka_bootstrap, prefix + OPT_OUTS.name)
        output, _ = await asyncio.to_thread(process.communicate, timeout=90)
    assert process.returncode == 1, output
    assert "Traceback" not in output
    assert '"event": "worker stopped"' in output  # cleanly: what started was committed
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    assert error.startswith("error: worker keywords stopped: aiokafka cannot read the record "
                            f"at {prefix}{OPT_OUTS.name} partition 1 offset ")
