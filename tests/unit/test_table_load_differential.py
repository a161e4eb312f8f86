"""Randomized differential check of a load's fast path (HeldValues._apply_all) against the
one-by-one rule (`_apply` per record), beyond test_table_load_fetches: records without a key or
a time (None, 0, Kafka's -1), byte strings around the ledger's state beginnings, partitions first
met inside a fetch among runs, writes of our own (put_local) and reads between fetches, and a
fingerprint read by add_run against fingerprint() for keys of any bytes."""

from __future__ import annotations

import random
import types
from dataclasses import dataclass

import pytest

import consumers.table_archive
import consumers.table_values
from consumers.ledger import LEDGER_WHOLE_FOR_S, LedgerEntry
from consumers.table_archive import BUCKET_S, Archive, Run, fingerprint
from tests.unit.test_table_load_fetches import held
from tests.unit.test_table_load_runs import VALUES, ledger

NOW = 1_790_000_000.0
KEYS = [f"cmd-{n}".encode() for n in range(50)] + [b"", b"\x00", b"\xff" * 9, "é".encode()]
# Beginnings of the ledger's final states, cut, altered and extended: the prefix lookup's edges.
EDGE_VALUES: list[bytes | None] = [
    b'{"state":"sent"', b'{"state":"sent",', b'{"state":"sent"}', b'{"state":"sent"x',
    b'{"state":"failed"}', b'{"state":"failed",', b'{"state":"faile",', b'{"state": "sent"}',
    b'{"STATE":"sent"}', b'{"state":"sent","state":"pending"}', b'{"state":["sent"]}',
    b'{"state":{"a":1}}', b' {"state":"sent"}', b"", b"null", b"\xff\xfe", b"[]",
    b'{"state":"released"}', b'{"state":"pending"}',
]


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    offset: int
    timestamp: int | None
    partition: int


def timestamp_ms(rng: random.Random) -> int | None:
    kind = rng.random()
    if kind < 0.05:
        return rng.choice((None, 0, -1))
    if kind < 0.15:
        return int((NOW - LEDGER_WHOLE_FOR_S) * 1000) + rng.choice((-1, 0, 1))
    if kind < 0.55:
        edge = (int(NOW - LEDGER_WHOLE_FOR_S) // BUCKET_S - rng.randrange(6)) * BUCKET_S
        return edge * 1000 + rng.choice((-1, 0, 1, 999, 1000))
    if kind < 0.85:
        return int((NOW - rng.uniform(LEDGER_WHOLE_FOR_S, 2 * 86_400)) * 1000)
    return int((NOW - rng.uniform(0, LEDGER_WHOLE_FOR_S)) * 1000)


def value(rng: random.Random) -> bytes | None:
    kind = rng.random()
    if kind < 0.6:
        return VALUES[rng.choice(("sent", "failed"))]
    if kind < 0.8:
        return rng.choice(EDGE_VALUES)
    return VALUES[rng.choice(list(VALUES))]


def fetches(rng: random.Random, count: int) -> list[list[Record]]:
    """Runs of one partition (of up to 9, new ones met late), a few records without a key."""
    made: list[Record] = []
    partitions = 2
    while len(made) < count:
        if rng.random() < 0.05:
            partitions = min(9, partitions + 1)
        partition = rng.randrange(partitions)
        for _ in range(rng.randrange(1, 25)):
            key = None if rng.random() < 0.02 else rng.choice(KEYS)
            made.append(Record(key, value(rng), len(made), timestamp_ms(rng), partition))
    cut: list[list[Record]] = []
    at = 0
    while at < len(made):
        size = rng.randrange(1, 120)
        cut.append(made[at:at + size])
        at += size
    return cut


@pytest.mark.parametrize("seed", range(200))
def test_a_load_holds_what_each_record_applied_alone_holds(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = types.SimpleNamespace(time=lambda: NOW)
    monkeypatch.setattr(consumers.table_values, "time", clock)
    monkeypatch.setattr(consumers.table_archive, "time", clock)
    rng = random.Random(seed)
    alone, together = ledger(), ledger()
    for fetch in fetches(rng, 800):
        for record in fetch:
            alone._apply(record)
        together._apply_all(fetch)
        for key in rng.sample(KEYS, 3):
            assert alone.get(key) == together.get(key)
        if rng.random() < 0.2:  # a write of our own between fetches
            key, state = rng.choice(KEYS), rng.choice(("pending", "sent", "released"))
            for table in (alone, together):
                table.put_local(key, LedgerEntry(state=state))
    assert held(together) == held(alone)
    assert len(together) == len(alone)
    for key in KEYS:
        assert together.get(key) == alone.get(key)


@pytest.mark.parametrize("seed", range(20))
def test_a_runs_fingerprints_are_fingerprint_of_each_key(seed: int) -> None:
    rng = random.Random(seed)
    keys = [rng.randbytes(rng.randrange(0, 40)) for _ in range(500)]
    one_by_one, in_runs = Archive(), Archive()
    run = Run()
    run.start(3, NOW)
    for key in keys:
        one_by_one.add(key, 1, 3, NOW)
        run.keys.append(key)
        run.states.append(1)
    in_runs.add_run(run)
    assert not run.keys and not run.states
    (bucket,) = in_runs._buckets.values()
    assert list(bucket.added[0]) == [fingerprint(key) for key in keys]
    for archive in (one_by_one, in_runs):
        archive.sort()
    assert [list(b.fingerprints) for b in in_runs._buckets.values()] == \
        [list(b.fingerprints) for b in one_by_one._buckets.values()]
    assert all(in_runs.find(key) == {3: 1} for key in keys)
