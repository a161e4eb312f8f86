"""A ledger loaded from the real broker (CompactedTable.start: fetches applied together, the
collector paused) holds what applying each record it was written alone holds: the same records
whole, the same write times, the same archive, and every key reads the same. Old and recent
final records, pending and released marks, unreadable values and tombstones, keys in two
partitions and in two buckets, records on a bucket's edge; on a topic of its own."""

from __future__ import annotations

import random
import time
import uuid

from aiokafka import AIOKafkaProducer

from consumers.ledger import (
    LEDGER_ARCHIVING,
    LEDGER_WHOLE_FOR_S,
    LedgerEntry,
    decode_ledger,
    ledger_stands,
)
from consumers.table import CompactedTable
from consumers.table_archive import BUCKET_S
from switchboard.topics import OUTBOUND_SENT, TopicSpec, ensure_topics
from tests.unit.test_compacted_table import FakeRecord
from tests.unit.test_table_load_runs import VALUES, ledger

PARTITIONS = 3
MARGIN_S = 600  # from the hour's edge: the clock moves between writing and loading


def _timestamp_ms(rng: random.Random, now: float) -> int:
    kind = rng.random()
    if kind < 0.4:  # on a bucket's edge, or a millisecond off it
        edge = (int(now - LEDGER_WHOLE_FOR_S - MARGIN_S) // BUCKET_S - rng.randrange(8))
        return edge * BUCKET_S * 1000 + rng.choice((-1, 0, 1))
    if kind < 0.8:
        return int((now - rng.uniform(LEDGER_WHOLE_FOR_S + MARGIN_S, 3 * 86_400)) * 1000)
    return int((now - rng.uniform(0, LEDGER_WHOLE_FOR_S - MARGIN_S)) * 1000)


def _records(rng: random.Random, now: float, count: int) -> list[FakeRecord]:
    keys = [f"load-{uuid.uuid4()}".encode() for _ in range(count // 6)]
    made = []
    for offset in range(count):
        state = rng.choice(("sent", "failed")) if rng.random() < 0.7 else rng.choice(
            list(VALUES))
        made.append(FakeRecord(rng.choice(keys), VALUES[state], offset=offset,
                               timestamp=_timestamp_ms(rng, now),
                               partition=rng.randrange(PARTITIONS)))
    return made


def _held(table: CompactedTable[LedgerEntry]) -> tuple[object, ...]:
    """What the table holds, the keys it times; the archive as each bucket's entries, in
    whatever order the partitions' fetches came (equal fingerprints of two partitions keep
    their read order)."""
    archive = table._archived
    assert archive is not None
    archive.sort()
    buckets = {index: sorted(zip(bucket.fingerprints, bucket.partitions, bucket.states,
                                 strict=True))
               for index, bucket in archive._buckets.items() if len(bucket)}
    return table._undecoded, set(table._written), buckets


async def test_a_loaded_ledger_holds_what_its_records_applied_alone_do(
        kafka_bootstrap: str) -> None:
    topic = f"test.ledger-load.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=PARTITIONS, replication_factor=1,
                        specs=(TopicSpec(topic, "ledger load test", OUTBOUND_SENT.config),))
    written = _records(random.Random(11), time.time(), 3000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, record.value, key=record.key,
                                    partition=record.partition, timestamp_ms=record.timestamp)
                for record in written]
        for future in sent:
            await future
    finally:
        await producer.stop()

    alone = ledger()
    for record in written:
        alone._apply(record)
    loaded = CompactedTable(kafka_bootstrap, topic, decode_ledger, stands=ledger_stands,
                            max_age_s=alone.max_age_s, archiving=LEDGER_ARCHIVING)
    await loaded.start()
    await loaded.stop()

    assert _held(loaded) == _held(alone)
    # A key's time is at least that of each record it holds whole, the later of them across
    # partitions; an earlier record's, later still, may stay after it was dropped (archived),
    # as the partitions' reads interleaved: a key then expires late, never early.
    last = {(record.key, record.partition): record for record in written}
    for partition, held in loaded._undecoded.items():
        for key in held:
            assert loaded._written[key] >= last[key, partition].timestamp / 1000 - 1e-3
    assert len(loaded) == len(alone)
    for key in {record.key for record in written if record.key is not None}:
        assert loaded.get(key) == alone.get(key), key
