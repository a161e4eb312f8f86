"""A commit naming a topic deleted under the worker: Kafka answers it UNKNOWN_TOPIC_OR_PARTITION,
which aiokafka takes for passing and retries without end, so the commit only hangs. It held
every later commit and /readyz said `Kafka unreachable`; now it is given up (cancelled) after
COMMIT_TIMEOUT_S and said as Kafka's refusal. Over a consumer stand-in (no broker); the real
broker's case: tests/integration/test_worker_topic_deleted.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from consumers import commits, kafka_watch
from consumers import runtime as runtime_module
from tests.unit.fake_consumers import Group
from tests.unit.test_runtime_kafka_silent_log import _said
from tests.unit.test_runtime_readiness import SILENT_S, TP, _ready_again, _worker

COMMIT_TIMEOUT_S = 0.1


class DeletingGroup(Group):
    """Kafka's metadata lacks the topics in `deleted`; a commit naming one, or any while Kafka
    is `away`, is retried, as aiokafka does, until it is cancelled or Kafka takes it
    (`answering`: back, and the topics created again)."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: set[str] = set()
        self.away = False
        self.hanging = 0
        self.given_up = 0
        self.answering = asyncio.Event()

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set() if topic in self.deleted else super().partitions_for_topic(topic)

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if not self.away and not {tp.topic for tp in offsets} & self.deleted:
            return await super().commit(offsets)
        self.hanging += 1
        try:
            await self.answering.wait()
        except asyncio.CancelledError:
            self.given_up += 1
            raise


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch) -> DeletingGroup:
    consumer = DeletingGroup()

    async def stop(consumer: Any) -> None:
        return None

    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: consumer)
    monkeypatch.setattr(runtime_module, "stop_consumer", stop)
    monkeypatch.setattr(kafka_watch, "KAFKA_SILENT_AFTER_S", SILENT_S)
    monkeypatch.setattr(kafka_watch, "KAFKA_CHECK_S", 0.02)
    monkeypatch.setattr(commits, "COMMIT_TIMEOUT_S", COMMIT_TIMEOUT_S)
    return consumer


async def test_a_commit_of_a_deleted_topic_is_given_up_and_said_as_kafkas_refusal(
        group: DeletingGroup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    async with _worker(group) as runtime:
        await group.assign({TP})
        group.answer()
        group.pause(TP)  # every slot busy: the commits alone tell of Kafka
        runtime._fetched[TP] = 5

        # Kafka away: its metadata is the last it answered, which has the topic. The commit
        # is left to run until Kafka answers it (it may have been taken), as before.
        group.away = True
        await asyncio.sleep(SILENT_S + 0.3)
        problem = runtime.problem() or ""
        assert problem.startswith("Kafka unreachable: commits failing for "), problem
        assert (group.hanging, group.given_up) == (1, 0)

        # Kafka answers that it has no such topic (deleted): the commit out is given up, and
        # each one after it in turn, none left out for good holding the rest.
        group.deleted.add(TP.topic)
        await asyncio.sleep(SILENT_S)
        problem = runtime.problem() or ""
        assert problem.startswith(
            "Kafka refused the commits: UnknownTopicOrPartitionError (for "), problem
        assert group.hanging >= 2 and group.given_up >= group.hanging - 1
        failed = {str(line["error_type"]): line for line in _said(caplog, "commit failed")}
        assert set(failed) == {"TimeoutError", "UnknownTopicOrPartitionError"}
        assert "Kafka has no topic t any more" in str(
            failed["UnknownTopicOrPartitionError"]["error"])
        assert len(_said(caplog, "kafka is not answering the worker")) == 1
        assert len(_said(caplog, "kafka refuses the worker's commits")) == 1

        group.away = False  # created again: the commit out is taken, and the next
        group.deleted.clear()
        group.answering.set()
        await _ready_again(runtime)
        assert len(_said(caplog, "kafka takes the worker's commits again")) == 1
