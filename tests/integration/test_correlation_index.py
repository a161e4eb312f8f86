"""The correlation index against the real broker: it waits for a results topic that does not
exist yet (ingest creates the topics as it starts) instead of following nothing for good, and
reads partitions added to it while it runs."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime

from ingest.correlation import CorrelationIndex
from switchboard.commands import OutboundResult, ResultStatus
from switchboard.producer import NEW_PARTITIONS_WITHIN_S
from switchboard.records import result_record
from switchboard.topics import TopicSpec, ensure_topics
from tests.kafka_helpers import add_partitions, produce_to_partition, publish


async def test_a_results_topic_created_after_the_start_is_followed(kafka_bootstrap: str) -> None:
    topic = f"test.results.{uuid.uuid4().hex[:8]}"
    index = CorrelationIndex(kafka_bootstrap, frozenset({"infobip-omnichat"}), wait_s=0,
                             topic=topic)
    index.start()
    try:
        await asyncio.sleep(1.5)  # it has looked, and found no topic
        assert not index.caught_up.is_set()

        await ensure_topics(kafka_bootstrap, partitions=2, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))
        result = OutboundResult(command_id="cmd-1", account="oc", provider="infobip-omnichat",
                                to="user-1", status=ResultStatus.ACCEPTED,
                                provider_message_id="m-1", attempts=1,
                                completed_at=datetime.now(UTC))
        await publish(kafka_bootstrap, [dataclasses.replace(result_record(result), topic=topic)])
        await asyncio.wait_for(index.caught_up.wait(), 30)
        for _ in range(100):  # caught up with the topic as it was: the result may follow
            if await index.command_for("infobip-omnichat", "oc", "m-1"):
                break
            await asyncio.sleep(0.1)
        assert await index.command_for("infobip-omnichat", "oc", "m-1") == "cmd-1"
    finally:
        await index.stop()


def _result(command_id: str, message_id: str) -> bytes:
    return result_record(OutboundResult(
        command_id=command_id, account="oc", provider="infobip-omnichat", to="user-1",
        status=ResultStatus.ACCEPTED, provider_message_id=message_id, attempts=1,
        completed_at=datetime.now(UTC))).value


async def test_a_partition_added_to_the_results_topic_is_read(kafka_bootstrap: str) -> None:
    # It read the partitions there were at its start: the sender's results written to a new
    # one left Omnichat's reports uncorrelated until ingest restarted.
    topic = f"test.results.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    await produce_to_partition(kafka_bootstrap, topic, 0, (b"k", _result("cmd-0", "m-0")))
    index = CorrelationIndex(kafka_bootstrap, frozenset({"infobip-omnichat"}), wait_s=0,
                             topic=topic)
    index.start()
    try:
        await asyncio.wait_for(index.caught_up.wait(), 30)
        await add_partitions(kafka_bootstrap, topic, 2)
        await produce_to_partition(kafka_bootstrap, topic, 1, (b"k", _result("cmd-1", "m-1")))
        for _ in range(int(NEW_PARTITIONS_WITHIN_S + 20) * 5):  # within the bound, and then some
            if await index.command_for("infobip-omnichat", "oc", "m-1"):
                break
            await asyncio.sleep(0.2)
        assert await index.command_for("infobip-omnichat", "oc", "m-1") == "cmd-1"
        assert await index.command_for("infobip-omnichat", "oc", "m-0") == "cmd-0"
        assert index.results_read == 2  # partition 0 read on from where it was, not again
    finally:
        await index.stop()
