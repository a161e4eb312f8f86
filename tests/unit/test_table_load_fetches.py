"""A load's fetches applied a fetch at a time (HeldValues._apply_all, the start-up path) leave
exactly what applying each record alone does: the same records whole and decoded, the same
write times and the same archive, bucket by bucket, entry by entry. Records on a bucket's
edges, keys read (decoded) between fetches, ids archived in two buckets and partitions,
pending and released marks, unreadable records and tombstones included."""

from __future__ import annotations

import random
import types

import pytest

import consumers.table_archive
import consumers.table_values
from consumers.ledger import LEDGER_WHOLE_FOR_S, LedgerEntry
from consumers.table import CompactedTable
from consumers.table_archive import BUCKET_S
from tests.unit.test_compacted_table import FakeRecord
from tests.unit.test_table_load_runs import VALUES, ledger

NOW = 1_790_000_000.0  # a fixed clock: the hour's cutoff is the same for both tables
KEYS = [f"cmd-{n}".encode() for n in range(60)]


def timestamp_ms(rng: random.Random) -> int:
    """Old (over the hour, often exactly on a bucket's edge or a millisecond off it), on the
    hour's edge, recent, or none (0)."""
    kind = rng.random()
    if kind < 0.05:
        return int((NOW - LEDGER_WHOLE_FOR_S) * 1000) + rng.choice((-1, 0, 1))
    if kind < 0.5:
        edge = (int(NOW - LEDGER_WHOLE_FOR_S) // BUCKET_S - rng.randrange(8)) * BUCKET_S
        return edge * 1000 + rng.choice((-1, 0, 1))
    if kind < 0.8:
        return int((NOW - rng.uniform(LEDGER_WHOLE_FOR_S + 1, 3 * 86_400)) * 1000)
    if kind < 0.95:
        return int((NOW - rng.uniform(0, LEDGER_WHOLE_FOR_S - 1)) * 1000)
    return 0


def records(rng: random.Random, count: int) -> list[FakeRecord]:
    """Mostly old final records in runs of one partition, as a fetch holds them."""
    made: list[FakeRecord] = []
    while len(made) < count:
        partition = rng.randrange(4)
        for _ in range(rng.randrange(1, 30)):
            state = rng.choice(("sent", "failed")) if rng.random() < 0.7 else rng.choice(
                list(VALUES))
            made.append(FakeRecord(rng.choice(KEYS), VALUES[state], offset=len(made),
                                   timestamp=timestamp_ms(rng), partition=partition))
    return made


def held(table: CompactedTable[LedgerEntry]) -> tuple[object, ...]:
    archive = table._archived
    assert archive is not None
    archive.sort()
    buckets = {index: (list(bucket.fingerprints), list(bucket.partitions), list(bucket.states))
               for index, bucket in archive._buckets.items() if len(bucket)}
    # The write times in their order too: the load keeps them oldest first.
    return (table._undecoded, table._values, table._local, list(table._written.items()),
            buckets)


@pytest.mark.parametrize("seed", range(40))
def test_fetches_applied_together_hold_what_records_applied_alone_do(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = types.SimpleNamespace(time=lambda: NOW)
    monkeypatch.setattr(consumers.table_values, "time", clock)
    monkeypatch.setattr(consumers.table_archive, "time", clock)
    rng = random.Random(seed)
    read = records(rng, 600)
    alone, together = ledger(), ledger()
    for key in rng.sample(KEYS, 3):  # written here, not read back yet
        for table in (alone, together):
            table.put_local(key, LedgerEntry(state="pending"))
    at = 0
    while at < len(read):
        fetch = read[at:at + rng.randrange(1, 80)]
        for record in fetch:
            alone._apply(record)
        together._apply_all(fetch)
        at += len(fetch)
        for key in rng.sample(KEYS, 4):  # decoded now: the key's record moves to _values
            assert alone.get(key) == together.get(key)
    assert held(together) == held(alone)
    assert len(together) == len(alone)
