"""switchboard_worker_records_total{outcome="dead_letter"} counts letters Kafka stored: it was
counted before the letter was published, so a letter Kafka refused for good (the worker then
stops short of the record) or one given back at a stop while waiting for Kafka (its next owner
dead-letters it, and counts it) was counted too."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.producer import PublishError
from switchboard.records import OutRecord
from switchboard.topics import DEAD_LETTER
from tests.fakes import KeepingProducer

TP = TopicPartition("t", 3)
# A backoff of no time is no wait at all: a stop meanwhile is then not seen (wait_for, 0 s).
FAST = RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.001)


async def _failing(record: Record, ctx: Context) -> None:
    raise RuntimeError("the CRM is down")


def _count(worker: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("switchboard_worker_records_total",
                                     {"worker": worker, "outcome": outcome}) or 0.0


async def _handle(runtime: WorkerRuntime) -> None:
    """One record through the runtime's dispatch, as a fetch would hand it, to its end."""
    await runtime._dispatch({TP: [Record(TP.topic, TP.partition, 41, b"k", b"{}")]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)


class RefusingProducer(KeepingProducer):
    """Kafka refuses every record for good (too large, say)."""

    async def publish(self, records: list[OutRecord]) -> None:
        raise PublishError("MessageSizeTooLargeError", lasting=True)


class AwayProducer(KeepingProducer):
    """Kafka does not answer; the worker is stopped while it waits to publish again."""

    def __init__(self) -> None:
        super().__init__()
        self.runtime: WorkerRuntime | None = None

    async def publish(self, records: list[OutRecord]) -> None:
        assert self.runtime is not None
        self.runtime.stop()  # SIGTERM meanwhile: the record is given back
        raise PublishError("KafkaTimeoutError")


def _runtime(producer: KeepingProducer) -> WorkerRuntime:
    return WorkerRuntime(name=f"dl-{uuid.uuid4().hex[:8]}", kafka="unused:9092",
                         topics=[TP.topic], handler=_failing, retry=FAST,
                         producer=producer)  # type: ignore[arg-type]


async def test_a_letter_kafka_stored_is_counted_once() -> None:
    producer = KeepingProducer()
    runtime = _runtime(producer)
    await _handle(runtime)
    assert [r.topic for r in producer.published] == [DEAD_LETTER.name]
    assert _count(runtime.name, "dead_letter") == 1
    assert _count(runtime.name, "retry") == 1  # the first of its two attempts


async def test_a_letter_kafka_refused_for_good_is_not_counted() -> None:
    runtime = _runtime(RefusingProducer())
    await _handle(runtime)
    assert runtime._failure is not None  # the worker stops short of the record
    assert _count(runtime.name, "dead_letter") == 0


async def test_a_letter_given_back_at_a_stop_is_not_counted() -> None:
    producer = AwayProducer()
    runtime = producer.runtime = _runtime(producer)
    await _handle(runtime)
    assert runtime._failure is None and runtime._in_flight[TP] == {41}  # given back, unkept
    assert _count(runtime.name, "dead_letter") == 0
