"""DurableProducer when Kafka keeps one partition's batch without an answer, without a broker.

aiokafka's idempotent producer retries a batch without end while its partition is short of
in-sync replicas, or its leader is known but does not answer: the batch's future stays
pending. A round trip with such a batch waited up to twice the produce timeout; the next
group, filling meanwhile, met its own timeout, and under steady traffic nearly every request
of every other partition was answered 503."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder

from switchboard import producer as producer_module
from switchboard.producer import MAX_BATCH_BYTES, DurableProducer, PublishError
from switchboard.records import OutRecord
from tests.unit.fakes import FakeKafkaClient

HEALTHY = "switchboard.message.status.v1"
STUCK = "switchboard.raw.v1"


class StuckPartitionClient:
    """Stands in for AIOKafkaProducer: acknowledges every batch at once, but those of STUCK,
    which it keeps unanswered until `release`d."""

    made: list[StuckPartitionClient] = []
    delay = 0.0  # how long Kafka takes to answer for the other partitions

    def __init__(self, **options: Any) -> None:
        self.client = FakeKafkaClient()
        self.unanswered: list[asyncio.Future[None]] = []
        self.stored = 0
        self.released = False
        StuckPartitionClient.made.append(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *,
                         partition: int) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic == STUCK and not self.released:
            self.unanswered.append(done)
        elif self.delay:
            self.stored += 1
            asyncio.get_running_loop().call_later(self.delay, done.set_result, None)
        else:
            self.stored += 1
            done.set_result(None)
        return done

    def release(self) -> None:
        self.released = True
        for future in self.unanswered:
            future.set_result(None)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> list[StuckPartitionClient]:
    StuckPartitionClient.made = []
    StuckPartitionClient.delay = 0.0
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", StuckPartitionClient)
    return StuckPartitionClient.made


async def test_a_partition_kept_unanswered_leaves_the_others_answered(
        client: list[StuckPartitionClient]) -> None:
    producer = DurableProducer("unused:9092", timeout_s=0.5)
    await producer.start()
    outcomes: dict[str, PublishError | None] = {}

    async def call(topic: str, name: str) -> None:
        try:
            await producer.publish([OutRecord(topic, name.encode(), b"k")])
            outcomes[name] = None
        except PublishError as exc:
            outcomes[name] = exc

    try:
        await producer.publish([OutRecord(HEALTHY, b"warm", b"k")])  # Kafka seen taking
        calls = []
        for n in range(40):  # 2 s of traffic, four times the produce timeout
            if n % 4 == 0:
                calls.append(asyncio.ensure_future(call(STUCK, f"stuck-{n}")))
            calls.append(asyncio.ensure_future(call(HEALTHY, f"healthy-{n}")))
            await asyncio.sleep(0.05)
        await asyncio.wait(calls, timeout=10)
        assert [n for n, o in outcomes.items() if n.startswith("healthy") and o] == []
        assert all(outcomes[f"stuck-{n}"] is not None for n in range(0, 40, 4))
        # The later ones were refused at once, not queued behind the batch still out.
        assert len(client[0].unanswered) == 1
        client[0].release()  # the partition takes records again: Kafka answered
        await asyncio.sleep(0.01)
        await producer.publish([OutRecord(STUCK, b"once answered", b"k")])
    finally:
        await producer.stop()
    assert len(client) == 1  # nothing failed: the client can still write every partition


async def test_a_round_trip_of_only_a_leaderless_partition_does_not_hold_the_next(
        client: list[StuckPartitionClient]) -> None:
    """A round trip whose records all went to a partition the metadata shows without a leader
    stored nothing, which alone would read as Kafka away: the next waited behind it."""
    producer = DurableProducer("unused:9092", timeout_s=0.5)
    await producer.start()
    cluster = client[0].client.cluster
    cluster.leader_for_partition = lambda tp: -1 if tp.topic == STUCK else 0  # type: ignore
    try:
        alone = asyncio.ensure_future(producer.publish([OutRecord(STUCK, b"alone", b"k")]))
        await asyncio.sleep(0.01)  # its round trip is out
        await asyncio.wait_for(producer.publish([OutRecord(HEALTHY, b"next", b"k")]), 0.4)
        with pytest.raises(PublishError):
            await alone
    finally:
        await producer.stop()


async def test_a_stuck_round_trip_ending_late_does_not_fail_the_requests_beside_it(
        client: list[StuckPartitionClient]) -> None:
    """A round trip whose records all went to the partition Kafka keeps without an answer is
    left to end by itself (Kafka stored others lately), at twice the timeout. Ending then with
    nothing stored says nothing of Kafka, which stored other round trips meanwhile: requests
    arriving while the next round trip is out are not refused as if Kafka were away."""
    StuckPartitionClient.delay = 0.05  # a round trip is out that long
    producer = DurableProducer("unused:9092", timeout_s=0.5)
    await producer.start()
    try:
        await producer.publish([OutRecord(HEALTHY, b"warm", b"k")])  # Kafka seen taking
        with pytest.raises(PublishError):
            await producer.publish([OutRecord(STUCK, b"alone", b"k")])
        await producer.publish([OutRecord(HEALTHY, b"meanwhile", b"k")])  # stored since
        for _ in range(200):  # until the stuck round trip has ended, a few seconds at most
            if producer._buffered == 0:
                break
            await asyncio.sleep(0.02)
        assert producer._buffered == 0
        first = asyncio.ensure_future(producer.publish([OutRecord(HEALTHY, b"a", b"k")]))
        await asyncio.sleep(0.01)  # its round trip is out, Kafka answers in 0.05 s
        await producer.publish([OutRecord(HEALTHY, b"b", b"k")])
        await first
    finally:
        await producer.stop()


async def test_a_round_trip_of_withheld_records_only_does_not_fail_the_requests_beside_it(
        client: list[StuckPartitionClient]) -> None:
    """Records that joined a group before their partition became stuck are withheld from it;
    a round trip of nothing else handed Kafka nothing, and says nothing of it either."""
    StuckPartitionClient.delay = 0.05
    producer = DurableProducer("unused:9092", timeout_s=0.5)
    await producer.start()
    try:
        await producer.publish([OutRecord(HEALTHY, b"warm", b"k")])
        alone = asyncio.ensure_future(producer.publish([OutRecord(STUCK, b"alone", b"k")]))
        await asyncio.sleep(0.01)  # out, not yet stuck: this one joins the next group
        with pytest.raises(PublishError, match="earlier records of the same partition"):
            await producer.publish([OutRecord(STUCK, b"withheld", b"k")])
        first = asyncio.ensure_future(producer.publish([OutRecord(HEALTHY, b"a", b"k")]))
        await asyncio.sleep(0.01)
        await producer.publish([OutRecord(HEALTHY, b"b", b"k")])
        await first
    finally:
        with contextlib.suppress(PublishError):
            await alone
        await producer.stop()


async def test_kafka_answering_slowly_is_waited_for_not_taken_for_a_stuck_partition(
        client: list[StuckPartitionClient]) -> None:
    """Kafka answering every batch in a fifth of the timeout (a busy cluster, acks=all) stores
    every request, as it did before round trips were left to end by themselves: left at a
    tenth of the timeout, the partitions of a round trip merely slow were 'stuck' and the
    records of the requests behind it refused at once."""
    StuckPartitionClient.delay = 0.1
    producer = DurableProducer("unused:9092", timeout_s=0.5)
    await producer.start()
    try:
        await producer.publish([OutRecord(HEALTHY, b"warm", b"k")])
        calls = []
        for n in range(20):  # 0.4 s of traffic: several round trips, each out 0.1 s
            calls.append(asyncio.ensure_future(
                producer.publish([OutRecord(HEALTHY, b"%d" % n, b"k")])))
            await asyncio.sleep(0.02)
        await asyncio.gather(*calls)
    finally:
        await producer.stop()
