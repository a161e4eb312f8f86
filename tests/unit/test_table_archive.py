"""The fingerprints a table keeps of its old entries (consumers.table_archive): found by key,
with their state and partition, dropped by whole buckets (BUCKET_S) once past the cutoff,
never earlier."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from consumers.table_archive import BUCKET_S, Archive, fingerprint

START = 1_800_000 * BUCKET_S  # a bucket's start, in seconds since the epoch


def test_fingerprints_are_the_same_in_every_process() -> None:
    # blake2b, not hash(): a restart (another PYTHONHASHSEED) must find what it archived.
    assert fingerprint(b"cmd-1") == 0xD69ABA6302FBEDD5
    assert fingerprint(b"cmd-1") != fingerprint(b"cmd-2")


@pytest.mark.parametrize(("adds", "key", "found"), [
    ([(b"a", 1, 0, START)], b"a", {0: 1}),
    ([(b"a", 1, 0, START)], b"b", {}),
    # Its state in each partition it was archived from.
    ([(b"a", 1, 0, START), (b"a", 0, 6, START + 5)], b"a", {0: 1, 6: 0}),
    # Archived again in one partition: the later write's state, in the same bucket or a later one.
    ([(b"a", 1, 0, START), (b"a", 0, 0, START + 5)], b"a", {0: 0}),
    ([(b"a", 1, 0, START + BUCKET_S), (b"a", 0, 0, START)], b"a", {0: 1}),
    ([(b"a", 0, 0, START), (b"a", 1, 0, START + BUCKET_S)], b"a", {0: 1}),
])
def test_a_key_is_found_with_its_state_by_partition(
        adds: list[tuple[bytes, int, int, float]], key: bytes, found: dict[int, int]) -> None:
    archive = Archive()
    for added in adds:
        archive.add(*added)
    assert archive.find(key) == found


def test_entries_added_after_a_lookup_are_found_too() -> None:
    archive = Archive()
    archive.add(b"a", 1, 0, START)
    assert archive.find(b"b") == {}
    archive.add(b"b", 0, 2, START + 10)
    archive.add(b"a", 0, 0, START + 20)
    assert (archive.find(b"a"), archive.find(b"b")) == ({0: 0}, {2: 0})
    assert len(archive) == 2  # a's earlier entry in partition 0 replaced


def test_remove_drops_the_keys_entries_of_one_partition_only() -> None:
    archive = Archive()
    for partition, at in ((0, START), (0, START + BUCKET_S), (6, START)):
        archive.add(b"a", 1, partition, at)
    archive.add(b"b", 1, 0, START)
    archive.remove(b"a", 0)
    assert (archive.find(b"a"), archive.find(b"b")) == ({6: 1}, {0: 1})


@pytest.mark.parametrize(("cutoff", "left"), [
    (START, {b"h0", b"h1", b"h2"}),
    (START + BUCKET_S - 1, {b"h0", b"h1", b"h2"}),  # h0's last second is not past it yet
    (START + BUCKET_S, {b"h1", b"h2"}),
    (START + 2 * BUCKET_S + 1, {b"h2"}),
    (START + 3 * BUCKET_S, set()),
])
def test_expiry_drops_only_buckets_wholly_before_the_cutoff(cutoff: float, left: set[bytes]
                                                           ) -> None:
    archive = Archive()
    for bucket, key in enumerate((b"h0", b"h1", b"h2")):
        archive.add(key, 1, 0, START + bucket * BUCKET_S + BUCKET_S - 1)
        archive.add(key + b"-early", 1, 0, START + bucket * BUCKET_S)
    archive.drop_older_than(cutoff)
    assert {key for key in (b"h0", b"h1", b"h2") if archive.find(key)} == left
    assert len(archive) == 2 * len(left)


def test_many_ids_are_all_found_and_none_of_others() -> None:
    archive = Archive()
    for n in range(100_000):  # over 28 hours, in time order as a topic's are
        archive.add(b"cmd-%d" % n, n % 2, n % 6, START + n)
    assert all(archive.find(b"cmd-%d" % n) == {n % 6: n % 2} for n in range(100_000))
    assert not any(archive.find(b"other-%d" % n) for n in range(100_000))
    assert len(archive) == 100_000


def test_an_archived_id_takes_a_few_bytes() -> None:
    """About 11 bytes an id (8 of fingerprint, 2 of partition, 1 of state); the bound is
    generous (the ledger held some 620 bytes of objects per id whole)."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        archive = Archive()
        for n in range(100_000):
            archive.add(b"cmd-%d" % n, 0, n % 6, START + n * 0.5)
        archive.find(b"cmd-1")  # sorted, as it is held once looked up
        per_id = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(
            before, "filename")) / 100_000
    finally:
        tracemalloc.stop()
    print(f"archived: {per_id:.1f} bytes per id")
    assert per_id < 40


def test_entries_merged_in_many_rounds_read_as_a_model_of_last_writes() -> None:
    """The sweep adds a minute's ids at a time into buckets already sorted (merged, not sorted
    again whole): whatever the rounds, a key reads as its last state in each partition."""
    rng = random.Random(7)
    archive, model = Archive(), dict[bytes, dict[int, int]]()
    keys = [f"cmd-{n}".encode() for n in range(300)]
    for _ in range(40):  # rounds of adds, each followed by a lookup (which merges them in)
        for _ in range(rng.randrange(1, 60)):
            key, state, partition = rng.choice(keys), rng.randrange(2), rng.randrange(3)
            archive.add(key, state, partition, START + 1)
            model.setdefault(key, {})[partition] = state
        assert archive.find(rng.choice(keys)) is not None
    assert {key: archive.find(key) for key in keys} == {key: model.get(key, {}) for key in keys}
    assert len(archive) == sum(len(states) for states in model.values())  # no duplicates kept


def test_count_apart_from_counts_each_archived_id_once_across_buckets_and_partitions() -> None:
    archive = Archive()
    for n in range(30_000):  # ids over several buckets, a third archived again later
        archive.add(b"cmd-%d" % n, 1, n % 3, START + n)
        if n % 3 == 0:
            archive.add(b"cmd-%d" % n, 0, n % 2, START + n + 2 * BUCKET_S)
    whole = {b"cmd-%d" % n for n in range(0, 30_000, 10)} | {b"never-archived"}
    assert len(archive) == 40_000  # entries
    assert archive.count_apart_from(set()) == 30_000
    assert archive.count_apart_from(whole) == 30_000 - 3_000
