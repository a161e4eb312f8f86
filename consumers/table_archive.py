"""A compacted table's old entries, kept as fingerprints (consumers.table): 11 bytes an id
instead of its record (the sender's ledger: about 620 bytes of objects per command id).

A key is kept as the first 8 bytes of its blake2b digest, with a small state code and the
partition its record was read from, in buckets of 6 hours of the record's write time. Lookup
bisects each bucket (33 for 8 days: 35 µs at 2 M ids, where hours' 193 took 160 µs, and every
new command is looked up); a bucket is dropped whole once all of it is past the
table's age limit (late, never early: an id kept a little longer than its topic keeps it is
the safe side).

Two keys with the same fingerprint read as one: a new key taken for an archived one. For the
ledger, a command taken so is not sent (at most once holds) and gets no result, counted
`already_handled`: about n/2^64 per command with n ids archived, some 4e-13 for the 7 million
of 8 days at 10 sends/s.
"""

from __future__ import annotations

import sys
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from hashlib import blake2b
from itertools import repeat, takewhile
from typing import Any, Generic, TypeVar

V = TypeVar("V")
BUCKET_S = 6 * 3600
_COUNTED_AT_ONCE = 250_000  # fingerprints in count_apart_from's set: some 20 MB at most
_DIGEST_8 = partial(blake2b, digest_size=8)  # cheaper a call than the keyword given each time
_BIG_ENDIAN = sys.byteorder == "big"  # array("Q") holds native order; fingerprints are little


@dataclass(frozen=True)
class Archiving(Generic[V]):
    """What a table archives and how it reads it back. Entries written `whole_for_s` ago or
    more whose state `state_of_record` (from the record's bytes) or `state_of_value` (once
    decoded) names (a code 0-255; None: keep it whole) are archived, and read back as
    `value_of_state` of that code."""

    whole_for_s: float
    state_of_record: Callable[[bytes], int | None]
    state_of_value: Callable[[V], int | None]
    value_of_state: Callable[[int], V]


def fingerprint(key: bytes) -> int:
    """The same in every process and at every start (unlike hash())."""
    return int.from_bytes(_DIGEST_8(key).digest(), "little")  # as add_run's


class _Bucket:
    """A bucket's entries: sorted fingerprints, their states and partitions alongside, and
    those added since the last lookup (sorted in at the next: at load they come by the
    million, and held as tuples until then they would take ten times the memory)."""

    __slots__ = ("added", "fingerprints", "partitions", "states")

    def __init__(self) -> None:
        self.fingerprints, self.partitions, self.states = array("Q"), array("H"), array("B")
        self.added = (array("Q"), array("H"), array("B"))

    def sort(self) -> None:
        """Merge the added entries in, each after the equal fingerprints held (a key read
        twice from one partition keeps its later entry: its partition's last record). Only
        the added are walked: the sweep adds a minute's ids to a bucket of hundreds of
        thousands, and walking those each minute would hold the event loop for a long while."""
        added_fps, added_partitions, added_states = self.added
        self.added = (array("Q"), array("H"), array("B"))
        held_fps, held_partitions, held_states = self.fingerprints, self.partitions, self.states
        fps, partitions, states = array("Q"), array("H"), array("B")
        copied = 0
        for i in sorted(range(len(added_fps)), key=added_fps.__getitem__):  # stable
            fp, partition, state = added_fps[i], added_partitions[i], added_states[i]
            upto = bisect_right(held_fps, fp, copied)
            if upto > copied:
                fps += held_fps[copied:upto]
                partitions += held_partitions[copied:upto]
                states += held_states[copied:upto]
                copied = upto
            j = len(fps) - 1
            while j >= 0 and fps[j] == fp:  # the same key (or fingerprint) so far
                if partitions[j] == partition:
                    states[j] = state
                    break
                j -= 1
            else:
                fps.append(fp)
                partitions.append(partition)
                states.append(state)
        fps += held_fps[copied:]
        partitions += held_partitions[copied:]
        states += held_states[copied:]
        self.fingerprints, self.partitions, self.states = fps, partitions, states

    def remove(self, fp: int, partition: int) -> None:
        if self.added[0]:
            self.sort()
        i = bisect_left(self.fingerprints, fp)
        while i < len(self.fingerprints) and self.fingerprints[i] == fp:
            if self.partitions[i] == partition:
                del self.fingerprints[i], self.partitions[i], self.states[i]
            else:
                i += 1

    def __len__(self) -> int:
        return len(self.fingerprints) + len(self.added[0])


class Run:
    """Entries to add of one partition and bucket, read in a row (consumers.table_values, at
    load: millions, where calls per entry took a seventh of its time)."""

    __slots__ = ("begins", "ends", "keys", "partition", "states")

    def __init__(self) -> None:
        self.partition, self.begins, self.ends = -1, 0.0, 0.0
        self.keys: list[bytes] = []
        self.states = array("B")

    def holds(self, partition: int, written_at: float) -> bool:
        """Whether an entry of `partition` written at `written_at` belongs to this run."""
        return partition == self.partition and self.begins <= written_at < self.ends

    def start(self, partition: int, written_at: float) -> None:
        """An empty run, of the bucket `written_at` falls in."""
        self.partition = partition
        self.begins = written_at // BUCKET_S * BUCKET_S
        self.ends = self.begins + BUCKET_S
        self.keys.clear()
        del self.states[:]


class Archive:
    """Fingerprints of keys, each with the state code and partition of its record."""

    def __init__(self) -> None:
        self._buckets: dict[int, _Bucket] = {}  # by BUCKET_S since the epoch
        self._oldest_first: list[_Bucket] = []  # the same, in the order find() reads them

    def add(self, key: bytes, state: int, partition: int, written_at: float) -> None:
        fps, partitions, states = self._bucket(int(written_at // BUCKET_S)).added
        fps.append(fingerprint(key))
        partitions.append(partition)
        states.append(state)

    def add_run(self, run: Run) -> None:
        """As add() each of the run's entries in turn; the run is then empty."""
        if not run.keys:
            return
        bucket = self._bucket(int(run.begins // BUCKET_S))
        fps, partitions, states = bucket.added
        # The digests' bytes read as an array in one go, not an int made of each.
        digests = array("Q", b"".join([_DIGEST_8(key).digest() for key in run.keys]))
        if _BIG_ENDIAN:
            digests.byteswap()
        fps.extend(digests)
        partitions.extend(repeat(run.partition, len(run.keys)))
        states.extend(run.states)
        run.keys.clear()
        del run.states[:]

    def _bucket(self, index: int) -> _Bucket:
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket()
            self._order()
        return bucket

    def find(self, key: bytes) -> dict[int, int]:
        """The key's state code by partition: in each, the entry written last."""
        fp, found = fingerprint(key), dict[int, int]()
        for bucket in self._oldest_first:  # the newer bucket's entry replaces the older's
            if bucket.added[0]:
                bucket.sort()
            fps = bucket.fingerprints
            i = bisect_left(fps, fp)
            while i < len(fps) and fps[i] == fp:  # mostly not even once
                found[bucket.partitions[i]] = bucket.states[i]
                i += 1
        return found

    def sort(self) -> None:
        """Sort in what was added (once loaded: not at the first lookup, a command waiting)."""
        for bucket in self._buckets.values():
            if bucket.added[0]:
                bucket.sort()

    def remove(self, key: bytes, partition: int) -> None:
        fp = fingerprint(key)
        for bucket in self._buckets.values():
            bucket.remove(fp, partition)

    def drop_older_than(self, cutoff: float) -> None:
        """Buckets whose every entry was written before `cutoff`."""
        for index in [index for index in self._buckets if (index + 1) * BUCKET_S <= cutoff]:
            del self._buckets[index]
        self._order()

    def _order(self) -> None:
        self._oldest_first = [self._buckets[index] for index in sorted(self._buckets)]

    def count_apart_from(self, keys: set[bytes]) -> int:
        """Keys archived, but not among `keys` (a table's whole ones), each once: one archived
        from two partitions or in two buckets (written again hours apart) counts once. The
        fingerprints are counted a range of values at a time, the range's slice of every
        (sorted) bucket in one set, so as not to hold a set of them all (some 60 bytes an id,
        where the archive keeps 11). Some 0.1 s a million ids (a table's size is logged once
        loaded)."""
        self.sort()
        buckets = [bucket.fingerprints for bucket in self._buckets.values()]
        ranges = sum(map(len, buckets)) // _COUNTED_AT_ONCE + 1
        fps = {fingerprint(key) for key in keys}
        starts = [0] * len(buckets)
        count = 0
        for upper in (n * 2**64 // ranges for n in range(1, ranges + 1)):
            held: set[int] = set()
            for n, bucket_fps in enumerate(buckets):
                end = bisect_left(bucket_fps, upper, starts[n])
                held.update(bucket_fps[starts[n]:end])
                starts[n] = end
            count += len(held) - len(held.intersection(fps))
        return count

    def __len__(self) -> int:
        """Entries: a key archived in two buckets (written again) or partitions counts twice."""
        return sum(len(bucket) for bucket in self._buckets.values())


class Archived(Archive, Generic[V]):
    """A table's archived entries, and what it archives (its `Archiving`)."""

    def __init__(self, archiving: Archiving[V]) -> None:
        super().__init__()
        self.archiving = archiving

    def took(self, record: Any) -> bool:
        """Archive a record as it is read if it is old and archivable (at start: days of
        records, never all held whole at once). Its table then drops the key's earlier record
        in that partition."""
        state = self.state_to_archive(record, time.time() - self.archiving.whole_for_s)
        if state is None:
            return False
        self.add(record.key, state, record.partition, record.timestamp / 1000)
        return True

    def state_to_archive(self, record: Any, cutoff: float) -> int | None:
        """The state to archive a record read as: one written before `cutoff` (a record
        without a time is kept whole) in a state its Archiving archives."""
        if not 0 < (record.timestamp or 0) / 1000 <= cutoff:
            return None
        return self.archiving.state_of_record(record.value)

    def sweep(self, written: OrderedDict[bytes, float], local: dict[bytes, V],
              undecoded: dict[int, dict[bytes, bytes]],
              values: dict[int, dict[bytes, V]]) -> list[bytes]:
        """Archive the table's keys written `whole_for_s` ago or more (`written`, oldest first)
        whose every record held is archivable, and return them for the table to drop. The
        others (pending; written here, not read back yet) stay whole until they expire."""
        cutoff = time.time() - self.archiving.whole_for_s
        archived = []
        for key, at in list(takewhile(lambda item: item[1] < cutoff, written.items())):
            states = None if key in local else self._states(key, undecoded, values)
            if states:
                for partition, state in states.items():
                    self.add(key, state, partition, at)
                archived.append(key)
        return archived

    def _states(self, key: bytes, undecoded: dict[int, dict[bytes, bytes]],
                values: dict[int, dict[bytes, V]]) -> dict[int, int] | None:
        """The state to archive the key's record in each partition as, None if one has none."""
        states: dict[int, int] = {}
        for partition, raw in undecoded.items():
            if key in raw:
                state = self.archiving.state_of_record(raw[key])
            elif key in values[partition]:
                state = self.archiving.state_of_value(values[partition][key])
            else:
                continue
            if state is None:
                return None
            states[partition] = state
        return states

    def values_of(self, key: bytes) -> Iterator[V]:
        """The key's archived value in each partition it has one, in partition order."""
        for _, state in sorted(self.find(key).items()):
            yield self.archiving.value_of_state(state)
