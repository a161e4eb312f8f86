"""DurableProducer when aiokafka's client can no longer write a partition, without a broker.

aiokafka's idempotent producer gives each batch its partition's next sequence number when it
takes it from its queue (to send it, or to drop it for want of a leader), and never takes one
back. After a batch fails for good (the broker refused it, say as too large for the topic, or
it waited too long for a partition without a leader), the broker waits for a sequence number
that never comes and refuses every later batch of the partition as out of order, for as long
as that client lives (aio-libs/aiokafka#1017): each webhook of the account, whose raw records
share a partition, would be answered 503 until a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, OutOfOrderSequenceNumber
from aiokafka.producer.message_accumulator import BatchBuilder, MessageAccumulator
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import TopicPartition

from switchboard import producer as producer_module
from switchboard.producer import MAX_BATCH_BYTES, DurableProducer, PublishError
from switchboard.records import OutRecord
from tests.unit.fakes import FakeKafkaClient

TOPIC = "switchboard.raw.v1"
REFUSED = b"too large for the topic as the cluster has it"


class SequencedClient:
    """Stands in for AIOKafkaProducer: takes batches as its idempotent one does. A batch the
    broker refuses spends its sequence number, and every later batch of its partition is then
    refused as out of order."""

    made: list[SequencedClient] = []
    unreachable = False  # new clients cannot connect
    events: list[tuple[str, int]] = []  # ("stop" or "send", which client), in order

    def __init__(self, **options: Any) -> None:
        self.client = FakeKafkaClient()
        self.stored: list[bytes] = []
        self.gaps: set[tuple[str, int]] = set()
        self.stopped = False
        SequencedClient.made.append(self)

    async def start(self) -> None:
        if SequencedClient.unreachable:
            raise ConnectionError("kafka away")

    async def stop(self) -> None:
        self.stopped = True
        SequencedClient.events.append(("stop", SequencedClient.made.index(self)))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *,
                         partition: int) -> asyncio.Future[None]:
        SequencedClient.events.append(("send", SequencedClient.made.index(self)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        values = [record.value for record in _records(batch)]
        if (topic, partition) in self.gaps:
            done.set_exception(OutOfOrderSequenceNumber())
        elif REFUSED in values:
            self.gaps.add((topic, partition))
            done.set_exception(MessageSizeTooLargeError())
        else:
            self.stored.extend(values)
            done.set_result(None)
        return done


def _records(batch: BatchBuilder) -> list[Any]:
    return list(DefaultRecordBatch(bytes(batch._build())))


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[SequencedClient]:
    SequencedClient.made = []
    SequencedClient.unreachable = False
    SequencedClient.events = []
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", SequencedClient)
    return SequencedClient.made


async def test_after_kafka_refused_a_batch_the_partition_takes_records_again(
        clients: list[SequencedClient]) -> None:
    producer = DurableProducer("unused:9092", timeout_s=1)
    await producer.start()
    try:
        with pytest.raises(PublishError, match="MessageSizeTooLarge"):
            await producer.publish([OutRecord(TOPIC, REFUSED, b"bird|shop")])
        # Until the new client is in, the partition's records are refused at once, not sent
        # to be refused as out of order; the others' go with the old one meanwhile.
        with pytest.raises(PublishError, match="being replaced"):
            await producer.publish([OutRecord(TOPIC, b"too soon", b"bird|shop")])
        await _replaced(producer)
        await producer.publish([OutRecord(TOPIC, b"the next webhook", b"bird|shop")])
    finally:
        await producer.stop()
    assert len(clients) == 2  # a new client: a new producer id, its sequences from zero
    assert clients[1].stored == [b"the next webhook"]
    # It refreshes the metadata of the topic it writes, as the old one did: not of them all.
    assert clients[0].client.topics == clients[1].client.topics == {TOPIC}
    # The old one, holding nothing more, was stopped as the new one took over.
    assert ("stop", 0) in SequencedClient.events and clients[0].stopped
    assert [e for e in SequencedClient.events if e[0] == "send"] == [("send", 0), ("send", 1)]


async def test_a_timeout_keeps_the_client(clients: list[SequencedClient]) -> None:
    """Nothing was refused: records Kafka has not acknowledged yet may still land."""
    producer = DurableProducer("unused:9092", timeout_s=0.05)
    await producer.start()
    slow = asyncio.get_running_loop().create_future()
    taken = clients[0]

    async def never_acknowledged(batch: BatchBuilder, topic: str, *,
                                 partition: int) -> asyncio.Future[None]:
        return slow

    taken.send_batch = never_acknowledged  # type: ignore[method-assign]
    try:
        with pytest.raises(PublishError, match="did not acknowledge"):
            await producer.publish([OutRecord(TOPIC, b"v", b"k")])
    finally:
        await producer.stop()
    assert clients == [taken]


async def test_a_client_that_cannot_be_replaced_is_kept_and_tried_again(
        clients: list[SequencedClient]) -> None:
    producer = DurableProducer("unused:9092", timeout_s=1)
    await producer.start()
    first = clients[0]
    SequencedClient.unreachable = True
    try:
        with pytest.raises(PublishError, match="MessageSizeTooLarge"):
            await producer.publish([OutRecord(TOPIC, REFUSED, b"k")])
        await _replaced(producer)
        assert producer._producer is first and clients[1].stopped  # the half-made one closed
        SequencedClient.unreachable = False
        with pytest.raises(PublishError, match="OutOfOrderSequence"):
            await producer.publish([OutRecord(TOPIC, b"still refused", b"k")])
        await _replaced(producer)
        await producer.publish([OutRecord(TOPIC, b"once replaced", b"k")])
    finally:
        await producer.stop()
    assert clients[2].stored == [b"once replaced"]


async def test_outcomes_arriving_after_the_answer_are_retrieved(
        clients: list[SequencedClient]) -> None:
    """A group whose batches have not all ended within the timeout is answered; its batches
    still out fail later. Their futures are read anyway: asyncio otherwise logs "Future
    exception was never retrieved" for each."""
    producer = DurableProducer("unused:9092", timeout_s=1)
    await producer.start()
    late: list[asyncio.Future[None]] = []
    refuse = clients[0].send_batch

    async def partly_late(batch: BatchBuilder, topic: str, *,
                          partition: int) -> asyncio.Future[None]:
        if topic == TOPIC:
            return await refuse(batch, topic, partition=partition)
        late.append(asyncio.get_running_loop().create_future())
        return late[-1]

    clients[0].send_batch = partly_late  # type: ignore[method-assign]
    SequencedClient.unreachable = True  # kept: a client's stop gives up on what it holds
    try:
        with pytest.raises(PublishError):
            await producer.publish([OutRecord(TOPIC, REFUSED, b"k"),
                                    OutRecord("switchboard.message.status.v1", b"e", b"k"),
                                    OutRecord("switchboard.message.inbound.v1", b"e", b"k")])
        for _ in range(500):  # the round trip ends at twice the timeout
            if producer._flusher is None:
                break
            await asyncio.sleep(0.01)
        future = late[-1]  # the one not awaited when the timeout ended the wait
        future.set_exception(OutOfOrderSequenceNumber())
        await asyncio.sleep(0)
        assert not future._log_traceback  # read: nothing to log when it is collected
    finally:
        await producer.stop()


async def _replaced(producer: DurableProducer) -> None:
    """Until the new client being connected in the background has taken over, or failed to."""
    for _ in range(500):
        if producer._replacing is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the client was not replaced within 5 s")


async def test_a_client_failing_otherwise_answers_its_group_and_takes_the_next(
        clients: list[SequencedClient]) -> None:
    """aiokafka asserts on a partition it does not know (a topic deleted and made again): the
    flusher ended unseen with it, the group waited out its timeout, and asyncio logged
    "Task exception was never retrieved" at some later collection."""
    producer = DurableProducer("unused:9092", timeout_s=30)
    await producer.start()
    taken = clients[0]
    healthy = taken.send_batch

    async def unknown_partition(batch: BatchBuilder, topic: str, *,
                                partition: int) -> asyncio.Future[None]:
        taken.send_batch = healthy  # type: ignore[method-assign]
        raise AssertionError(f"Unrecognized partition {partition}")

    taken.send_batch = unknown_partition  # type: ignore[method-assign]
    try:
        with pytest.raises(PublishError, match="Unrecognized partition"):
            await asyncio.wait_for(producer.publish([OutRecord(TOPIC, b"v", b"k")]), 5)
        await asyncio.wait_for(producer.publish([OutRecord(TOPIC, b"next", b"k")]), 5)
    finally:
        await producer.stop()
    assert taken.stored == [b"next"]


async def test_a_stop_while_the_client_is_replaced_leaves_no_client_open(
        clients: list[SequencedClient]) -> None:
    """A SIGTERM while the old client lets what it holds land (Kafka away: it takes up to
    twice the timeout, as long as stop() waits for the flusher): stop() must not return with
    the new client still open, nor with the flusher still at work on it."""
    producer = DurableProducer("unused:9092", timeout_s=0.1)
    await producer.start()
    spoiled = clients[0]
    stopping: list[bool] = []

    async def slow_stop() -> None:
        if stopping:  # aiokafka's stop() returns at once when called again
            return
        stopping.append(True)
        await asyncio.sleep(0.5)  # records for a partition without a leader, retried
        spoiled.stopped = True

    spoiled.stop = slow_stop  # type: ignore[method-assign]
    with pytest.raises(PublishError, match="MessageSizeTooLarge"):
        await producer.publish([OutRecord(TOPIC, REFUSED, b"k")])
    await asyncio.wait_for(producer.stop(), 5)
    assert producer._flusher is None
    assert [client.stopped for client in clients] == [True, True]


async def test_a_batch_dropped_for_want_of_a_leader_spends_its_sequence_number() -> None:
    """Why a client is replaced also after a batch that never reached a broker: aiokafka
    (0.14) gives a batch its sequence number when it takes it from its queue, also to fail it
    there, its partition having had no leader for the whole request timeout. The broker then
    refuses the partition's next batch as out of order, as after one it refused. Should a
    later aiokafka take such a number back, such a drop need not replace the client."""
    class Leaderless:
        def leader_for_partition(self, tp: TopicPartition) -> int:
            return -1  # the partition's leader is being elected

    sequences = TransactionManager(None, 60_000)
    sequences.set_pid_and_epoch(7, 0)
    queue = MessageAccumulator(Leaderless(), MAX_BATCH_BYTES, 0, 0.01, txn_manager=sequences)
    tp = TopicPartition(TOPIC, 0)
    builder = queue.create_builder()
    builder.append(timestamp=None, key=b"k", value=b"never sent")
    outcome = await queue.add_batch(builder, tp, 1)
    await asyncio.sleep(0.02)  # past the batch's time to live
    nodes, _ = queue.drain_by_nodes(ignore_nodes=set())
    assert nodes == {}  # not sent: no leader to send it to
    with pytest.raises(KafkaError, match="LeaderNotAvailable"):
        await outcome
    assert sequences.sequence_number(tp) == 1  # spent all the same


async def test_one_partition_refused_is_not_reported_as_kafka_back_by_the_others(
        clients: list[SequencedClient], caplog: pytest.LogCaptureFixture) -> None:
    """A refused partition logged "kafka is not taking records", and the next round trip of
    any other partition "taking records again": two lines per failure, the second untrue.
    Back means back for a partition that failed."""
    producer = DurableProducer("unused:9092", timeout_s=1)
    await producer.start()
    try:
        with pytest.raises(PublishError, match="MessageSizeTooLarge"):
            await producer.publish([OutRecord(TOPIC, REFUSED, b"bird|shop")])
        await producer.publish([OutRecord("switchboard.status.v1", b"another", b"k")])
        assert "kafka is not taking records" in caplog.text
        assert "kafka is taking records again" not in caplog.text
        await producer.publish([OutRecord(TOPIC, b"the next webhook", b"bird|shop")])
    finally:
        await producer.stop()
    assert caplog.text.count("kafka is not taking records") == 1
    assert caplog.text.count("kafka is taking records again") == 1
