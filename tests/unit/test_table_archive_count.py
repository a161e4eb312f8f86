"""Archive.count_apart_from against a set of every id, over seeded random archives. It counts
a range of fingerprint values at a time, a range per _COUNTED_AT_ONCE fingerprints, so a table
below 250,000 ids never reads more than one range: these cut the range small to read many,
edges included (fingerprints 0 and 2^64 - 1, and those on a range's bound)."""

from __future__ import annotations

import random

import pytest

from consumers import table_archive
from consumers.table_archive import BUCKET_S, Archive, fingerprint


@pytest.mark.parametrize("seed", range(60))
def test_the_count_is_that_of_a_set_of_every_id(seed: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(table_archive, "_COUNTED_AT_ONCE", rng.choice([1, 2, 3, 7, 50]))
    archive = Archive()
    ids = [b"id-%d-%d" % (seed, n) for n in range(rng.randint(0, 300))]
    for _ in range(rng.randint(0, 600) if ids else 0):
        key = rng.choice(ids)  # again in another bucket or partition, or the same
        archive.add(key, rng.randint(0, 3), rng.randint(0, 5),
                    rng.randint(0, 8) * BUCKET_S + rng.random() * BUCKET_S)
        if rng.random() < 0.05:
            archive.sort()  # some added after a sort
        if rng.random() < 0.03:
            archive.remove(rng.choice(ids), rng.randint(0, 5))
    whole = set(rng.sample(ids, min(len(ids), rng.randint(0, 40)))) | {b"never-archived"}
    archived = {fingerprint(key) for key in ids if archive.find(key)}
    assert archive.count_apart_from(whole) == len(archived - {fingerprint(key) for key in whole})


@pytest.mark.parametrize("at_once", [1, 2, 3])
def test_fingerprints_at_the_ends_and_on_a_range_bound_count_once(
        at_once: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_archive, "_COUNTED_AT_ONCE", at_once)
    archive = Archive()
    values = [0, 1, 2**64 // 3, 2**64 // 3 + 1, 2**63 - 1, 2**63, 2**64 - 1]
    for index, value in enumerate(values * 2):  # each in two buckets
        fps, partitions, states = archive._bucket(index % 4).added
        fps.append(value)
        partitions.append(index % 2)
        states.append(0)
    assert archive.count_apart_from(set()) == len(values)
