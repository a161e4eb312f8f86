"""What a compacted table holds (consumers.table): each partition's last record of a key, what
we wrote ourselves until it is read back, their ages, and with archiving the fingerprints of old
entries. Kept apart from the reading of the topic (CompactedTable, which feeds `_apply`): no
I/O here, and the rules a key reads by (superseding, what stands, read-back, expiry) in one
place.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from consumers.table_archive import Archived, Archiving, Run
from switchboard.logs import get_logger, masked_contact

log = get_logger(__name__)
V = TypeVar("V")
SWEEP_EVERY_S = 60.0


@runtime_checkable
class Superseding(Protocol):
    """A table value that can say it is a key's value rather than another read from another
    partition (its topic gained partitions: the key was written to one partition before, to
    another after, and compaction keeps the last record of each)."""

    def supersedes(self, other: Any) -> bool: ...


@runtime_checkable
class FailSafeDecode(Protocol):
    """A table's decode that says what a key whose record cannot be decoded reads as, where
    keeping the last value read (or none) is not the safe side: in the opt-out list, an
    opt-out cut short would read as the START before it. `unreadable` logs it."""

    def __call__(self, value: bytes) -> Any: ...

    def unreadable(self, key: bytes, error: ValueError) -> Any: ...


class HeldValues(Generic[V]):
    """The values of a CompactedTable, read and written (its reader applies the records)."""

    def __init__(self, name: str, decode: Callable[[bytes], V], *,
                 stands: Callable[[V, V], bool] | None,
                 max_age_s: float | None, archiving: Archiving[V] | None) -> None:
        self._name = name  # the topic, as logs name it
        self.decode = decode
        self.unreadable: Callable[[bytes, ValueError], V] | None = (
            decode.unreadable if isinstance(decode, FailSafeDecode) else None)
        # `stands(current, read)`: the value held stands against one read from the topic. The
        # follower may read back our own earlier write after a later one was put locally.
        self.stands = stands
        # Keys last written longer ago than this are dropped, as the topic's retention drops
        # them: a long-running process would otherwise keep every key it ever read.
        self.max_age_s = max_age_s
        if archiving is not None and max_age_s is None:
            raise ValueError("an archiving table needs max_age_s: its entries' write times")
        self._archived = None if archiving is None else Archived(archiving)
        self._written: OrderedDict[bytes, float] = OrderedDict()  # oldest first
        self._swept_at = time.time()
        # By partition, in partition order: each key's last record there, decoded or not yet.
        # Kept apart, so a key's records in two partitions are both there to compare.
        self._values: dict[int, dict[bytes, V]] = {}
        self._undecoded: dict[int, dict[bytes, bytes]] = {}
        # What put_local() wrote, until a record read replaces it: the key's latest, in the
        # partition it was written to (the producer's choice: not known here).
        self._local: dict[bytes, V] = {}

    def _apply(self, record: Any) -> None:
        if record.key is None:
            return
        undecoded = self._undecoded.get(record.partition)
        if undecoded is None:
            undecoded = self._add_partition(record.partition)
        if record.value is None:  # a tombstone deletes the key's record in its partition
            self._drop(record.key, record.partition)
            if self._archived is not None:
                self._archived.remove(record.key, record.partition)
        elif record.key in self._local:
            self._read_back(record.key, record.partition, record.value)
        elif self._archived is not None and self._archived.took(record):
            self._drop_earlier(record.key, record.partition, undecoded)
        else:
            self._hold(record, undecoded)

    def _apply_all(self, records: Iterable[Any]) -> None:
        """Records read, in order, as `_apply` applies each. With archiving, the bulk of a load
        (old records in a final state: most of a ledger) is archived in this loop, a bucket's
        run of them at a time, with what `Archived.state_to_archive`, `Run.holds` and
        `_drop_earlier` do written out (a tenth of this loop's time). The loop is some 30 % of
        a load's CPU, the archive's sort some 20 %, aiokafka's fetch and records the rest."""
        if self._archived is None:
            for record in records:
                self._apply(record)
            return
        archived, local = self._archived, self._local
        state_of_record = archived.archiving.state_of_record
        cutoff = time.time() - archived.archiving.whole_for_s
        run = Run()  # archivable records of one partition and bucket, in a row
        keys, states = run.keys, run.states
        # The run's partition and bucket; the partition's held records (its fetch's, mostly).
        run_partition, begins, ends = -1, 0.0, 0.0
        at_partition, undecoded, values = -1, None, None
        for record in records:
            key, partition, value, timestamp = (record.key, record.partition, record.value,
                                                record.timestamp)
            if partition != at_partition:
                # Read again after _apply: a partition it added is in a new dict.
                undecoded = self._undecoded.get(partition)
                values = self._values.get(partition)
                at_partition = partition
            if (key is None or value is None or undecoded is None or values is None
                    or key in local or not 0 < (timestamp or 0) / 1000 <= cutoff
                    or (state := state_of_record(value)) is None):
                archived.add_run(run)  # archived before what _apply does next
                self._apply(record)
                at_partition = -1  # _apply may have added the partition
                continue
            written_at = timestamp / 1000
            if partition != run_partition or not begins <= written_at < ends:
                archived.add_run(run)
                run.start(partition, written_at)
                run_partition, begins, ends = partition, run.begins, run.ends
            keys.append(key)
            states.append(state)
            if key in undecoded or key in values:  # the partition's earlier record of it
                self._drop(key, partition)
        archived.add_run(run)

    def _drop_earlier(self, key: bytes, partition: int, undecoded: dict[bytes, bytes]) -> None:
        """The partition's earlier record of a key just archived."""
        if key in undecoded or key in self._values[partition]:
            self._drop(key, partition)

    def _hold(self, record: Any, undecoded: dict[bytes, bytes]) -> None:
        """Whole, as read: decoded when first asked for."""
        undecoded[record.key] = record.value
        if self.max_age_s is not None:
            self._touch(record.key, record.timestamp / 1000 if record.timestamp else None)

    def _add_partition(self, partition: int) -> dict[bytes, bytes]:
        """Kept in partition order: between equal values the lowest partition's is read."""
        self._undecoded = dict(sorted({**self._undecoded, partition: {}}.items()))
        self._values = dict(sorted({**self._values, partition: {}}.items()))
        return self._undecoded[partition]

    def _drop(self, key: bytes, partition: int | None = None) -> None:
        """The key's record in `partition` (in every one if None), and what we wrote of it."""
        self._local.pop(key, None)
        for p, undecoded in self._undecoded.items():
            if partition is None or p == partition:
                undecoded.pop(key, None)
                self._values[p].pop(key, None)
        if partition is None or not any(key in undecoded or key in self._values[p]
                                        for p, undecoded in self._undecoded.items()):
            self._written.pop(key, None)

    def _touch(self, key: bytes, at: float | None) -> None:
        at = at if at is not None else time.time()
        # A key's records in two partitions: kept until the newer is past the topic's retention.
        self._written[key] = max(at, self._written.get(key, at))
        self._written.move_to_end(key)

    def _drop_expired(self) -> None:
        """Once a minute (from the follower): keys past `max_age_s`; with `archiving`, entries
        past its `whole_for_s` archived, and the archive's buckets past `max_age_s` dropped."""
        if self.max_age_s is not None and time.time() - self._swept_at >= SWEEP_EVERY_S:
            self._drop_older_than(time.time() - self.max_age_s)
            if self._archived is not None:
                for key in self._archived.sweep(self._written, self._local, self._undecoded,
                                                self._values):
                    self._drop(key)
                self._archived.drop_older_than(time.time() - self.max_age_s)

    def _drop_older_than(self, cutoff: float) -> None:
        """Records arrive about in time order, so the oldest writes are at the front."""
        self._swept_at = time.time()
        while self._written:
            key, at = next(iter(self._written.items()))
            if at >= cutoff:
                break
            self._drop(key)

    def __len__(self) -> int:
        """Keys held, each once, whole or archived or both (archived, then read again in a
        state kept whole), or archived twice (Archive.count_apart_from)."""
        whole = set(self._local).union(*self._undecoded.values(), *self._values.values())
        return len(whole) + (self._archived.count_apart_from(whole)
                             if self._archived is not None else 0)

    def get(self, key: bytes) -> V | None:
        for partition, undecoded in self._undecoded.items():  # `in`: no call for a miss
            if key in undecoded:
                self._decode(key, partition, undecoded.pop(key))
        if key in self._local:
            held: V | None = self._local[key]
        else:
            held = None
            for values in self._values.values():
                if key in values:
                    held = _read_over(held, values[key])
        for archived in self._archived.values_of(key) if self._archived is not None else ():
            held = _read_over(held, archived)  # if it supersedes, or is the only one
        return held

    def _decode(self, key: bytes, partition: int, raw: bytes) -> None:
        """The partition's last record of the key replaces its earlier one there, unless
        `stands` keeps that (or what we wrote since) against it."""
        read = self._decoded(key, raw)
        if read is None:
            return
        values = self._values[partition]
        current = self._local.get(key, values.get(key))
        if current is not None and self.stands is not None and self.stands(current, read):
            return
        self._local.pop(key, None)
        values[key] = read

    def _decoded(self, key: bytes, raw: bytes) -> V | None:
        try:
            return self.decode(raw)
        except ValueError as exc:
            if self.unreadable is not None:
                return self.unreadable(key, exc)
            # The last value that could be read is kept. The key masked: one may name a
            # contact (the opt-out list's are `account|contact`).
            log.error("table record ignored", topic=self._name,
                      key=masked_contact(key.decode(errors="replace")), error=repr(exc))
            return None

    def _read_back(self, key: bytes, partition: int, raw: bytes) -> None:
        """A record of a key we wrote ourselves, most likely that very write read back: settled
        now, not when the key is next asked for (most never are: the sender's ledger, a key per
        command sent), or both would be held until the key expires, the written value decoded
        and the one read back (about 3.5 KB per command in the sender, measured by `bench
        soak`). The read one is kept as read, undecoded, unless what we wrote stands against
        it (`stands`, as in _decode), or it cannot be read (unless FailSafeDecode): then the
        written one stays."""
        read = self._decoded(key, raw)
        if read is None or (self.stands is not None and self.stands(self._local[key], read)):
            return
        del self._local[key]
        self._values[partition].pop(key, None)
        self._undecoded[partition][key] = raw

    def put_local(self, key: bytes, value: V) -> None:
        """Record what we just wrote to the topic ourselves, without waiting to read it back:
        the key's latest, in whichever partition it went to."""
        self._drop(key)
        self._local[key] = value
        if self.max_age_s is not None:
            self._touch(key, None)


def _read_over(held: V | None, value: V) -> V:
    """The value a key reads as: `value` if it supersedes what was `held` (or nothing was)."""
    if held is None or (isinstance(value, Superseding) and value.supersedes(held)):
        return value
    return held
