"""The ledger benchmark's pure parts: the records it writes (as the sender writes them, spread
over 8 days), what it samples, its options and its projection. No broker, no timing."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

import pytest

from bench.__main__ import BENCHES
from bench.ledger import (
    FAILED_EVERY,
    MAX_AGE_S,
    PROJECTED_IDS,
    PROJECTED_WHOLE,
    RECENT_SAMPLES,
    SAMPLES,
    LedgerRecord,
    Load,
    check,
    ledger_records,
    options,
    projection,
    recent_ids,
    sampled,
    written_at,
)
from consumers.ledger import (
    LEDGER_ARCHIVING,
    LEDGER_WHOLE_FOR_S,
    LedgerEntry,
    decode_ledger,
    ledger_stands,
)
from consumers.table_values import HeldValues

NOW = 1_800_000_000.0


def test_writes_are_oldest_first_within_the_ledgers_8_days_up_to_now() -> None:
    times = [written_at(n, 10_000, NOW) for n in range(10_000)]
    assert times == sorted(times)
    assert times[0] > NOW - MAX_AGE_S and times[-1] == NOW


def test_the_last_hour_holds_as_many_writes_as_any_other() -> None:
    ids = 200_000
    per_hour = ids * 3600 / (MAX_AGE_S - 3600)
    assert abs(recent_ids(ids, NOW) - per_hour) <= 1
    middle = sum(NOW - 100 * 3600 - 3600 < written_at(n, ids, NOW) <= NOW - 100 * 3600
                 for n in range(ids))
    assert abs(middle - per_hour) <= 1
    assert LEDGER_WHOLE_FOR_S == 3600  # what "recent" means above


def test_records_decode_as_the_ledger_reads_them() -> None:
    records = list(ledger_records(400, NOW))
    assert len({record.key for record in records}) == 400
    for n, record in enumerate(records):
        entry = decode_ledger(record.value)
        assert entry.state == record.state == ("failed" if n % FAILED_EVERY == 0 else "sent")
        assert entry.result is not None and entry.result.command_id == record.key.decode()
        assert (entry.result.error is not None) == (entry.state == "failed")
        assert record.timestamp_ms == int(written_at(n, 400, NOW) * 1000)
        assert math.isclose(entry.result.completed_at.timestamp(), record.timestamp_ms / 1000,
                            abs_tol=0.001)


def test_samples_spread_over_the_days_and_take_the_last_writes() -> None:
    ids = 100_000
    taken = [n for n in range(ids) if sampled(n, ids)]
    assert SAMPLES <= len(taken) <= SAMPLES + RECENT_SAMPLES
    assert taken[0] == 0 and taken[-1] == ids - 1
    assert sum(n >= ids - RECENT_SAMPLES for n in taken) == RECENT_SAMPLES


def test_ids_are_bounded() -> None:
    assert options([]).ids == 1_000_000
    assert options(["ledger", "--ids", "20000"]).ids == 20_000
    for ids in ("9999", "5000001"):
        with pytest.raises(SystemExit):
            options(["--ids", ids])


def test_the_projection_holds_the_last_hour_whole_and_the_rest_at_the_archived_figure() -> None:
    # 100,000 ids, 1,000 recent: whole 1,000 B an id; archived run 1,000 * 1,000 + 99,000 * 20.
    whole = Load(False, 1.0, 100_000_000 // 1024, 0, None, 100_000, 1.0, 1.0, [])
    archived = Load(True, 1.0, (1_000_000 + 99_000 * 20) // 1024, 0, None, 100_000, 1.0, 1.0,
                    [])
    all_whole, with_archive = projection(100_000, 1000, whole, archived)
    assert math.isclose(all_whole, 1000 * PROJECTED_IDS, rel_tol=0.01)
    expected = 1000 * PROJECTED_WHOLE + 20 * (PROJECTED_IDS - PROJECTED_WHOLE)
    assert math.isclose(with_archive, expected, rel_tol=0.01)


def test_it_is_one_of_the_benchmarks() -> None:
    assert "ledger" in BENCHES


def _loaded(archiving: bool, records: list[LedgerRecord]) -> HeldValues[LedgerEntry]:
    """A ledger's values as its table holds them once these records are read."""
    table = HeldValues("ledger", decode_ledger, stands=ledger_stands, max_age_s=MAX_AGE_S,
                       archiving=LEDGER_ARCHIVING if archiving else None)
    for record in records:
        table._apply(SimpleNamespace(key=record.key, value=record.value, partition=0,
                                     timestamp=record.timestamp_ms))
    return table


@pytest.mark.parametrize("archiving", [False, True])
def test_the_check_passes_ids_read_as_written_and_fails_any_other(archiving: bool) -> None:
    now = time.time()
    records = list(ledger_records(2000, now))
    samples: list[list[Any]] = [[r.key.decode(), r.state, r.timestamp_ms / 1000]
                                for n, r in enumerate(records) if sampled(n, len(records))]
    table = _loaded(archiving, records)
    assert check(table, samples, archiving, now, now) == []
    wrong = [[key, "failed" if state == "sent" else "sent", at] for key, state, at in samples]
    assert len(check(table, wrong, archiving, now, now)) == len(samples)
    # An old id read with its result where it should be archived (and a missing one) fail too.
    assert check(_loaded(False, records), samples, True, now, now) != []
    assert check(_loaded(True, records[:-1]), samples[-1:], archiving, now, now) != []
