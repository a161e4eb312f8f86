"""DurableProducer once a round trip stored nothing (Kafka away): a caller arriving while the
next round trip is out fails at once, as it would at the timeout, rather than wait it out. Not
after Kafka refused a record for what it is (Kafka is there), without a broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder

from switchboard import producer as producer_module
from switchboard.producer import MAX_BATCH_BYTES, DurableProducer, PublishError
from switchboard.records import OutRecord
from tests.unit.fakes import FakeKafkaClient

TOPIC = "switchboard.raw.v1"


class FakeClient:
    """Stands in for AIOKafkaProducer. `outcome` is what the batches it is given get: an
    error at once, or (None) held until the test answers them. A client made to replace it
    cannot connect: Kafka is away."""

    made: list[FakeClient] = []
    away = False

    def __init__(self, **options: Any) -> None:
        self.client = FakeKafkaClient()
        self.outcome: BaseException | None = None
        self.held: list[asyncio.Future[None]] = []
        self.sent = asyncio.Condition()
        FakeClient.made.append(self)

    async def start(self) -> None:
        if FakeClient.away:
            raise ConnectionError("kafka away")

    async def stop(self) -> None:
        for future in self.held:
            if not future.done():
                future.set_exception(KafkaTimeoutError())

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *,
                         partition: int) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.outcome is not None:
            done.set_exception(self.outcome)
        else:
            self.held.append(done)
            async with self.sent:
                self.sent.notify_all()
        return done


@pytest.fixture
async def producer(monkeypatch: pytest.MonkeyPatch) -> Any:
    FakeClient.made = []
    FakeClient.away = False
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", FakeClient)
    producer = DurableProducer("unused:9092", timeout_s=5)
    await producer.start()
    FakeClient.away = True  # a client made to replace it cannot connect
    try:
        yield producer
    finally:
        await producer.stop()


def _record(value: bytes) -> list[OutRecord]:
    return [OutRecord(TOPIC, value, b"bird|shop")]


async def _out(client: FakeClient, count: int) -> None:
    """Until `count` batches are out, held (a round trip in flight)."""
    async with asyncio.timeout(10), client.sent:
        await client.sent.wait_for(lambda: len(client.held) >= count)


async def _round_trip_out_after(producer: DurableProducer, failure: BaseException
                                ) -> tuple[FakeClient, asyncio.Future[None]]:
    """The client, once a round trip failed with `failure`, and a second one is out."""
    client = FakeClient.made[0]
    client.outcome = failure
    with pytest.raises(PublishError):
        await producer.publish(_record(b"failed"))
    client.outcome = None
    probe = asyncio.ensure_future(producer.publish(_record(b"probe")))
    await _out(client, 1)
    return client, probe


async def test_a_caller_beside_a_round_trip_after_one_that_stored_nothing_fails_at_once(
        producer: DurableProducer) -> None:
    # Before, it joined the next group and waited out the whole timeout (5 s here) behind the
    # round trip out, for its 503 at the end: failed so ("did not acknowledge"), not at once.
    client, probe = await _round_trip_out_after(producer, KafkaTimeoutError())
    with pytest.raises(PublishError, match="not taking records") as failed:
        await producer.publish(_record(b"beside"))
    assert not failed.value.lasting  # Kafka away: a worker waits it out, spends no attempt
    client.held[0].set_result(None)  # Kafka is back: the round trip out is stored
    await probe
    next_one = asyncio.ensure_future(producer.publish(_record(b"next")))
    await _out(client, 2)
    client.held[1].set_result(None)
    await next_one  # it waits for its round trip as usual again


async def test_a_caller_beside_a_round_trip_after_a_refused_record_waits_for_it(
        producer: DurableProducer) -> None:
    # Kafka refusing a record as too large is Kafka there: the others' records are taken.
    client, probe = await _round_trip_out_after(producer, MessageSizeTooLargeError())
    beside = asyncio.ensure_future(producer.publish(_record(b"beside")))
    client.held[0].set_result(None)
    await probe
    await _out(client, 2)  # the group after the probe's, sent once it ended
    client.held[1].set_result(None)
    await beside


class _TwoPartitions:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1}


def _key_of(producer: DurableProducer, partition: int) -> bytes:
    return next(key for n in range(100) if producer._partition(key := b"c%d" % n, 2) == partition)


async def test_a_round_trip_that_stored_some_records_ends_the_failing_at_once(
        producer: DurableProducer) -> None:
    # One partition without a leader (its broker crashed: a few seconds until another takes
    # it), the other storing: the round trip out had answered its callers of the storing one,
    # and a caller beside it still failed at once, until the leaderless batch ended it (the
    # whole timeout at worst), though Kafka was taking records all along.
    client = FakeClient.made[0]
    client.client.cluster = _TwoPartitions()  # type: ignore[assignment]
    client.outcome = KafkaTimeoutError()
    with pytest.raises(PublishError):  # a round trip that stored nothing
        await producer.publish(_record(b"failed"))
    client.outcome = None
    stored, leaderless = _key_of(producer, 1), _key_of(producer, 0)
    settled = asyncio.ensure_future(producer.publish([OutRecord(TOPIC, b"a", stored)]))
    waiting = asyncio.ensure_future(producer.publish([OutRecord(TOPIC, b"b", leaderless)]))
    await _out(client, 2)
    client.held[0].set_result(None)  # partition 1's batch stored; partition 0's waits
    await settled  # answered before the round trip ends: Kafka is taking records
    beside = asyncio.ensure_future(producer.publish([OutRecord(TOPIC, b"c", stored)]))
    await asyncio.sleep(0)
    assert not beside.done(), beside.exception()  # it waits for the round trip out
    client.held[1].set_result(None)  # the leader is back: the round trip ends, stored
    await waiting
    await _out(client, 3)  # the group after it, sent once it ended
    client.held[2].set_result(None)
    await beside


async def test_callers_answered_503_at_their_timeout_are_an_outage_said_once_and_its_end(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A broker back within twice the timeout: aiokafka's retry lands the batch after its
    callers got their 503, so the round trip ended as stored, and the outage was never said
    (the integration test of a broker stopped and started again failed so whenever the broker
    restarted quickly). Said as the callers get their 503; its end once the batch lands."""
    FakeClient.made = []
    FakeClient.away = False
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", FakeClient)
    producer = DurableProducer("unused:9092", timeout_s=0.2)
    await producer.start()
    try:
        client = FakeClient.made[0]
        with pytest.raises(PublishError, match="did not acknowledge"):
            await producer.publish(_record(b"while the broker is down"))
        assert caplog.text.count("kafka is not taking records") == 1
        assert "kafka is taking records again" not in caplog.text
        client.held[0].set_result(None)  # the broker is back: the batch lands, late
        for _ in range(100):  # bounded: until the round trip, left to end by itself, ends
            if "kafka is taking records again" in caplog.text:
                break
            await asyncio.sleep(0.01)
        client.outcome = None
        after = asyncio.ensure_future(producer.publish(_record(b"after")))
        await _out(client, 2)
        client.held[1].set_result(None)
        await after
    finally:
        await producer.stop()
    assert caplog.text.count("kafka is not taking records") == 1
    assert caplog.text.count("kafka is taking records again") == 1
