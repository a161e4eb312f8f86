"""A fetch's records applied together (HeldValues._apply_all, which archives runs of old final
records in one go: most of a ledger's load) leave a table as applying them one by one does:
the same entries whole, the same archive, the same reads."""

from __future__ import annotations

import random
import time

import pytest

from consumers.ledger import (
    LEDGER_ARCHIVING,
    LEDGER_WHOLE_FOR_S,
    LedgerEntry,
    decode_ledger,
    ledger_stands,
)
from consumers.table import CompactedTable
from consumers.table_archive import BUCKET_S
from tests.unit.test_compacted_table import FakeRecord
from tests.unit.test_table_archiving import entry

DAY_S = 86_400
KEYS = [f"cmd-{n}".encode() for n in range(40)]
# Values as the sender writes them, and some that are not: kept whole, as ever.
VALUES: dict[str, bytes | None] = {state: entry(state).model_dump_json().encode()
                                   for state in ("pending", "sent", "failed", "released")}
VALUES |= {"not json": b'{"state":"sent","result":', "no state": b'{"result":null}',
           "a list": b'["sent"]', "tombstone": None}
# Well inside the whole hour or past it (never at its edge), across buckets, and none (0).
AGES_S = (0.0, 60.0, LEDGER_WHOLE_FOR_S - 120, LEDGER_WHOLE_FOR_S + 120, BUCKET_S, 2 * DAY_S)


def ledger() -> CompactedTable[LedgerEntry]:
    return CompactedTable("unused:9092", "ledger", decode_ledger, stands=ledger_stands,
                          max_age_s=8 * DAY_S, archiving=LEDGER_ARCHIVING)


def records(rng: random.Random, now: float, count: int) -> list[FakeRecord]:
    """Mostly old final records in time order, as a ledger's topic holds them; the rest of
    every kind, age and partition."""
    made = []
    for n in range(count):
        age_s: float
        if rng.random() < 0.7:
            state, age_s = rng.choice(("sent", "failed")), 3 * DAY_S - n
        else:
            state, age_s = rng.choice(list(VALUES)), rng.choice(AGES_S)
        made.append(FakeRecord(rng.choice(KEYS), VALUES[state], offset=n,
                               timestamp=int((now - age_s) * 1000) if age_s else 0,
                               partition=rng.randrange(3)))
    return made


def state_of(table: CompactedTable[LedgerEntry]) -> tuple[object, ...]:
    archive = table._archived
    assert archive is not None
    archive.sort()
    # Written times: a record without a timestamp is given the time it is read.
    return (table._undecoded, list(table._written), table._local, len(archive),
            {key: archive.find(key) for key in KEYS},
            {key: (found.state, found.result is not None) if (found := table.get(key)) else None
             for key in KEYS},
            table._values)


@pytest.mark.parametrize("seed", range(30))
def test_records_applied_a_fetch_at_a_time_leave_the_table_as_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    now = time.time()
    read = records(rng, now, 400)
    one_by_one, by_fetch = ledger(), ledger()
    written_here = rng.sample(KEYS, 3)  # not read back yet: stays whole
    for table in (one_by_one, by_fetch):
        for key in written_here:
            table.put_local(key, LedgerEntry(state="pending"))
    for record in read:
        one_by_one._apply(record)
    at = 0
    while at < len(read):  # fetches of any size, a partition's or mixed
        size = rng.randrange(1, 60)
        by_fetch._apply_all(read[at:at + size])
        at += size
    assert state_of(by_fetch) == state_of(one_by_one)
    assert all(abs(at - one_by_one._written[key]) < 5 for key, at in by_fetch._written.items())


def test_a_run_of_old_final_records_is_archived_across_buckets_and_partitions() -> None:
    now = time.time()
    read = [FakeRecord(b"id-%d" % n, VALUES["sent" if n % 3 else "failed"],
                       timestamp=int((now - 2 * DAY_S + n * 3600) * 1000), partition=n % 2)
            for n in range(24)]  # over 24 hours: 4 or 5 buckets, both partitions
    table = ledger()
    table._apply_all(read)
    assert not any(table._undecoded.values()) and not table._written
    for n in range(24):
        found = table.get(b"id-%d" % n)
        assert found is not None and (found.state, found.result) == (
            "sent" if n % 3 else "failed", None)
