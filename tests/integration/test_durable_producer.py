"""DurableProducer against the real broker: group commit keeps every promise of a single send."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switchboard.clients import Compression, KafkaConnection
from switchboard.producer import DurableProducer, PublishError
from switchboard.producer_placement import MAX_BUFFERED_BYTES, MAX_REQUEST_BYTES
from switchboard.records import OutRecord
from switchboard.topics import TopicSpec, ensure_topics
from tests.kafka_helpers import delete_topic, new_topic

PARTITIONS = 4


async def _read_all(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of the first `count` records, in partition order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[tuple[int, bytes, bytes]] = []
        async with asyncio.timeout(20):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, records in batch.items():
                    found.extend((tp.partition, r.key, r.value) for r in records)
        return found
    finally:
        await consumer.stop()


async def test_concurrent_publishes_all_land_in_order_per_key(kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    producer = DurableProducer(kafka_bootstrap, timeout_s=10)
    await producer.start()
    try:
        async def conversation(n: int) -> None:
            for i in range(5):  # sequential per key, like one conversation's webhooks
                await producer.publish([OutRecord(topic, f"{n}:{i}".encode(),
                                                  f"contact-{n}".encode())])

        await asyncio.gather(*(conversation(n) for n in range(40)))
    finally:
        await producer.stop()

    found = await _read_all(kafka_bootstrap, topic, 200)
    assert len(found) == 200
    by_key: dict[bytes, list[bytes]] = {}
    for _, key, value in found:
        by_key.setdefault(key, []).append(value)
    for n in range(40):
        assert by_key[f"contact-{n}".encode()] == [f"{n}:{i}".encode() for i in range(5)]


async def test_partitions_match_the_default_partitioner(kafka_bootstrap: str) -> None:
    """Other producers (Java, plain aiokafka) must put a conversation on the same partition."""
    ours = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    theirs = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    keys = [f"infobip|acct|+4179{n:07d}".encode() for n in range(30)]
    producer = DurableProducer(kafka_bootstrap)
    await producer.start()
    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await plain.start()
    try:
        await producer.publish([OutRecord(ours, b"v", key) for key in keys])
        for key in keys:
            await plain.send_and_wait(theirs, b"v", key=key)
    finally:
        await producer.stop()
        await plain.stop()

    placed = {key: p for p, key, _ in await _read_all(kafka_bootstrap, ours, len(keys))}
    expected = {key: p for p, key, _ in await _read_all(kafka_bootstrap, theirs, len(keys))}
    assert placed == expected
    assert len(set(placed.values())) > 1  # the keys really were spread


async def test_a_record_too_large_fails_alone(kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    producer = DurableProducer(kafka_bootstrap)
    await producer.start()
    try:
        huge = OutRecord(topic, b"x" * (MAX_REQUEST_BYTES + 1), b"k")
        results = await asyncio.gather(
            producer.publish([huge]),
            producer.publish([OutRecord(topic, b"small", b"k")]),
            return_exceptions=True,
        )
    finally:
        await producer.stop()
    assert isinstance(results[0], PublishError)
    assert "exceeds" in str(results[0])
    assert results[1] is None
    assert [value for _, _, value in await _read_all(kafka_bootstrap, topic, 1)] == [b"small"]


async def test_a_record_the_broker_refuses_fails_only_the_requests_of_its_partition(
        kafka_bootstrap: str) -> None:
    """A 1 MB webhook on a raw topic left at Kafka's default 1 MB limit: the broker refuses
    its batch. Requests that shared its round trip with records on other partitions were all
    answered 503 (and their providers' retries stored them twice); only the ones whose
    records were in the refused partition may be."""
    limited = f"test.limited.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(limited, "test", {"max.message.bytes": "100000"}),))
    other = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    producer = DurableProducer(kafka_bootstrap, timeout_s=10)
    await producer.start()
    try:
        # Metadata of both known: the calls below join one group without an await.
        await producer.publish([OutRecord(limited, b"warm", b"k"), OutRecord(other, b"warm")])
        results = await asyncio.gather(
            producer.publish([OutRecord(other, b"before", b"a"),
                              OutRecord(limited, b"x" * 200_000, b"k")]),
            producer.publish([OutRecord(other, b"kept", b"b")]),
            producer.publish([OutRecord(other, b"also kept", b"c")]),
            return_exceptions=True,
        )
        assert isinstance(results[0], PublishError) and results[0].lasting
        assert results[1] is None and results[2] is None
        # The partition takes records again (a new client, connected in the background,
        # takes the place of the one the refused batch left unable to write it), as the
        # provider's retry of a 503 finds.
        for _ in range(50):
            try:
                await producer.publish([OutRecord(limited, b"after", b"k")])
                break
            except PublishError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the partition took no record within 5 s")
    finally:
        await producer.stop()
    stored = {value for _, _, value in await _read_all(kafka_bootstrap, other, 4)}
    assert {b"kept", b"also kept"} <= stored


async def test_a_partition_without_a_leader_holds_only_its_own_callers(
        kafka_bootstrap: str) -> None:
    """A partition whose batches wait for a leader (here its topic is deleted; a broker lost
    with the partition's only in-sync replica does the same) held the answer of every request
    sharing its round trip until that round trip's timeout: a 503 also to those whose records
    Kafka had stored, and under steady traffic to nearly every request."""
    gone = await new_topic(kafka_bootstrap, "gone", 1)
    other = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    producer = DurableProducer(kafka_bootstrap, timeout_s=5)
    await producer.start()
    loop = asyncio.get_running_loop()
    try:
        # Both topics in the client's metadata, which keeps the deleted one until it refreshes.
        await producer.publish([OutRecord(gone, b"warm"), OutRecord(other, b"warm")])
        await delete_topic(kafka_bootstrap, gone)
        stuck = asyncio.ensure_future(producer.publish([OutRecord(gone, b"lost")]))
        started = loop.time()
        await producer.publish([OutRecord(other, b"kept", b"a")])  # the same round trip
        assert loop.time() - started < 2.5
        with pytest.raises(PublishError):
            await stuck
    finally:
        await producer.stop()
    assert b"kept" in {value for _, _, value in await _read_all(kafka_bootstrap, other, 2)}


async def test_learning_a_topic_counts_against_the_produce_timeout(
        kafka_bootstrap: str) -> None:
    """A request with a record for a topic the client had no metadata for waited up to the
    produce timeout for it, then up to the timeout again (for its round trip, or the next
    such topic): answered after twice SWITCHBOARD_PRODUCE_TIMEOUT_S or more (10 s by
    default, when Webex Connect has given up). Here the topic appears 3 s into a 4 s timeout,
    and the other record's partition has no leader (a deleted topic the client still knows):
    one deadline answers at 4 s, two waits in a row at 7 s; the bound between them leaves a
    loaded machine 1.5 s either way."""
    gone = await new_topic(kafka_bootstrap, "gone", 1)
    later = f"test.later.{uuid.uuid4().hex[:8]}"
    producer = DurableProducer(kafka_bootstrap, timeout_s=4)
    await producer.start()
    loop = asyncio.get_running_loop()

    async def create_later() -> None:
        await asyncio.sleep(3)
        await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                            specs=(TopicSpec(later, "test"),))

    try:
        await producer.publish([OutRecord(gone, b"warm")])
        await delete_topic(kafka_bootstrap, gone)
        creating = asyncio.ensure_future(create_later())
        started = loop.time()
        with pytest.raises(PublishError):
            await producer.publish([OutRecord(later, b"new"), OutRecord(gone, b"lost")])
        assert loop.time() - started < 5.5
        await creating
    finally:
        await producer.stop()


async def test_a_full_buffer_refuses_at_once_and_the_rest_land(kafka_bootstrap: str) -> None:
    """Past MAX_BUFFERED_BYTES waiting for Kafka, a caller gets its PublishError (ingest's 503)
    at once rather than waiting, and the records already taken are stored all the same."""
    topic = f"test.buffer.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=PARTITIONS, replication_factor=1,
                        specs=(TopicSpec(topic, "test", {"max.message.bytes": "2097152"}),))
    producer = DurableProducer(kafka_bootstrap, timeout_s=20)
    await producer.start()
    value = b"x" * (1024 * 1024)
    taken = MAX_BUFFERED_BYTES // (len(value) + 100)
    try:
        await producer.publish([OutRecord(topic, b"warm")])  # metadata known: no await
        calls = [asyncio.ensure_future(producer.publish([OutRecord(topic, value, b"%d" % n)]))
                 for n in range(taken + 3)]
        await asyncio.sleep(0)  # each call has run up to its wait, or its refusal
        refused = [call for call in calls if call.done()]
        assert len(refused) == 3
        for call in refused:
            with pytest.raises(PublishError, match="too many records are waiting"):
                call.result()
        await asyncio.gather(*calls[:taken])
    finally:
        await producer.stop()
    assert len(await _read_all(kafka_bootstrap, topic, taken + 1)) == taken + 1


async def test_publish_before_start_or_after_stop_is_refused(kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    producer = DurableProducer(kafka_bootstrap)
    with pytest.raises(PublishError, match="not connected"):
        await producer.publish([OutRecord(topic, b"v")])
    await producer.start()
    await producer.publish([OutRecord(topic, b"v")])
    await producer.stop()
    with pytest.raises(PublishError, match="not connected"):
        await producer.publish([OutRecord(topic, b"v")])


async def test_a_cancelled_caller_does_not_cancel_its_group(kafka_bootstrap: str) -> None:
    """A client that hangs up must not fail the other requests sharing its group."""
    topic = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    producer = DurableProducer(kafka_bootstrap)
    await producer.start()
    try:
        await producer.publish([OutRecord(topic, b"warm", b"a")])  # metadata known: no await
        leaving = asyncio.create_task(producer.publish([OutRecord(topic, b"gone", b"a")]))
        staying = asyncio.create_task(producer.publish([OutRecord(topic, b"kept", b"a")]))
        await asyncio.sleep(0)
        leaving.cancel()
        await staying
    finally:
        await producer.stop()
    values = {value for _, _, value in await _read_all(kafka_bootstrap, topic, 3)}
    # "gone" was handed over before its caller left: it is stored anyway.
    assert values == {b"warm", b"gone", b"kept"}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_records_are_compressed_when_asked(kafka_bootstrap: str, codec: Compression) -> None:
    """The broker checks a topic's max.message.bytes against the batch as stored: 1 MB of
    repetitive JSON fits a 100 kB limit only if it was compressed."""
    topic = f"test.compressed.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=PARTITIONS, replication_factor=1,
                        specs=(TopicSpec(topic, "test", {"max.message.bytes": "100000"}),))
    value = b'{"status":"DELIVERED","to":"+41790000000"}' * 25_000
    for compression in ("none", codec):
        producer = DurableProducer(KafkaConnection(kafka_bootstrap, compression=compression),
                                   timeout_s=10)
        await producer.start()
        try:
            if compression == "none":
                with pytest.raises(PublishError):
                    await producer.publish([OutRecord(topic, value, b"k")])
            else:
                await producer.publish([OutRecord(topic, value, b"k")])
        finally:
            await producer.stop()
    [(_, key, stored)] = await _read_all(kafka_bootstrap, topic, 1)
    assert (key, stored) == (b"k", value)


async def test_a_client_whose_sender_task_ended_is_replaced(kafka_bootstrap: str) -> None:
    # aiokafka's sender task ending (a bug of its own, a crash inside it) leaves a client that
    # takes batches and never sends them. Its round trip fails, and the client is replaced
    # (spent_a_sequence): not every webhook 503 until a restart.
    topic = await new_topic(kafka_bootstrap, "producer-sender-ended", PARTITIONS)
    producer = DurableProducer(kafka_bootstrap, timeout_s=1)
    await producer.start()
    try:
        await producer.publish([OutRecord(topic, b"before", b"k")])
        client = producer._producer
        assert client is not None
        client._sender.sender_task.cancel()
        with pytest.raises(PublishError, match="did not acknowledge"):
            await producer.publish([OutRecord(topic, b"lost", b"k")])
        stored = False
        for _ in range(10):  # bounded: the replacement connects within a round trip or two
            try:
                await producer.publish([OutRecord(topic, b"after", b"k")])
            except PublishError:
                await asyncio.sleep(0.5)
                continue
            stored = True
            break
        assert stored, "the client was never replaced"
        assert producer._producer is not client
    finally:
        await producer.stop()
    values = [value for _, _, value in await _read_all(kafka_bootstrap, topic, 2)]
    assert values[:1] == [b"before"] and b"after" in values



async def test_a_partition_without_a_leader_leaves_the_others_answered_under_traffic(
        kafka_bootstrap: str) -> None:
    """A partition whose batches wait for a leader (its topic deleted here; a broker lost with
    the partition's only in-sync replica does the same) under steady traffic: each round trip
    waited for its batch, the next waited its turn meanwhile and met its timeout, and most
    requests of every other partition were answered 503."""
    gone = await new_topic(kafka_bootstrap, "gone", 1)
    healthy = await new_topic(kafka_bootstrap, "producer", PARTITIONS)
    producer = DurableProducer(kafka_bootstrap, timeout_s=1)
    await producer.start()
    loop = asyncio.get_running_loop()
    outcomes: dict[bytes, PublishError | None] = {}

    async def call(topic: str, value: bytes) -> None:
        try:
            await producer.publish([OutRecord(topic, value, value)])
            outcomes[value] = None
        except PublishError as exc:
            outcomes[value] = exc

    try:
        # Both topics in the client's metadata, which keeps the deleted one until it refreshes.
        await producer.publish([OutRecord(gone, b"warm"), OutRecord(healthy, b"warm")])
        await delete_topic(kafka_bootstrap, gone)
        calls = []
        started = loop.time()
        for n in range(40):  # 4 s of traffic, bounded
            if n % 4 == 0:
                calls.append(asyncio.ensure_future(call(gone, b"gone-%d" % n)))
            calls.append(asyncio.ensure_future(call(healthy, b"healthy-%d" % n)))
            await asyncio.sleep(0.1)
        await asyncio.wait(calls, timeout=30)
        assert loop.time() - started < 30
    finally:
        await producer.stop()
    failed = sorted(v.decode() for v, o in outcomes.items() if v.startswith(b"healthy") and o)
    assert failed == []
    assert all(outcomes[b"gone-%d" % n] is not None for n in range(0, 40, 4))
    stored = {value for _, _, value in await _read_all(kafka_bootstrap, healthy, 41)}
    assert {b"healthy-%d" % n for n in range(40)} <= stored
