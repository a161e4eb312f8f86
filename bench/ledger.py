"""The sender's ledger at scale: `--ids` command ids (default 1,000,000) written over 8 days to a
topic configured as outbound-sent, then loaded into a CompactedTable as `worker sender` builds
it, in a fresh process each (so RSS is the table's own): whole (the baseline) and with
LEDGER_ARCHIVING. Per load: its time and rate (records/s), RSS grown, entries, and lookups
checked and timed; then the ratios, and 8 days at 10 sends/s projected from the measured bytes
per id and load rates.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import child_env, kafka
from bench.soak_memory import status_kb
from consumers.ledger import (
    LEDGER_ARCHIVING,
    LEDGER_WHOLE_FOR_S,
    LedgerEntry,
    decode_ledger,
    ledger_stands,
)
from consumers.table import CompactedTable
from consumers.table_values import HeldValues
from switchboard.commands import OutboundResult, ResultStatus
from switchboard.events import ErrorInfo
from switchboard.topics import LEDGER_RETENTION_DAYS, OUTBOUND_SENT, TopicSpec, ensure_topics

DEFAULT_IDS, MIN_IDS, MAX_IDS = 1_000_000, 10_000, 5_000_000
MAX_AGE_S = LEDGER_RETENTION_DAYS * 86_400
# The writes end now and begin an hour inside the 8 days: neither the table's sweep during a
# long load nor the topic's retention drops any of them, so every one must be found.
SPAN_S = MAX_AGE_S - 3600
FAILED_EVERY = 20  # one id in 20 failed, the others sent
SAMPLES, RECENT_SAMPLES, LOOKUPS = 1000, 100, 10_000
PRODUCE_WINDOW = 20_000  # send() futures awaited together
PRODUCE_TIMEOUT_S, LOAD_TIMEOUT_S = 900.0, 900.0
PROJECTED_PER_S = 10
PROJECTED_IDS = PROJECTED_PER_S * MAX_AGE_S  # 6,912,000
PROJECTED_WHOLE = PROJECTED_PER_S * LEDGER_WHOLE_FOR_S  # the last hour's, held whole


@dataclass(frozen=True)
class LedgerRecord:
    key: bytes
    value: bytes
    timestamp_ms: int
    state: str


def written_at(n: int, ids: int, now: float) -> float:
    """The n-th of `ids` writes, oldest first, evenly over SPAN_S up to `now`: every hour
    holds as many (the last one, kept whole, too)."""
    return now - SPAN_S + SPAN_S * (n + 1) / ids


def ledger_entry(command_id: str, n: int, at: datetime) -> LedgerEntry:
    """The entry the sender writes once a command is sent (or failed), as the sender fills
    it (send_results): its size is what a whole entry costs."""
    result = OutboundResult(
        command_id=command_id, account="bench-infobip", provider="infobip",
        to=f"+4179{n % 10_000_000:07d}", status=ResultStatus.ACCEPTED,
        provider_message_id=str(uuid.uuid4()), attempts=1, completed_at=at)
    if n % FAILED_EVERY:
        return LedgerEntry(state="sent", result=result)
    failed = result.model_copy(update={
        "status": ResultStatus.FAILED, "provider_message_id": None,
        "error": ErrorInfo(code="EC_INVALID_DESTINATION_ADDRESS",
                           description="Invalid destination address", permanent=True)})
    return LedgerEntry(state="failed", result=failed)


def ledger_records(ids: int, now: float) -> Iterator[LedgerRecord]:
    for n in range(ids):
        at = written_at(n, ids, now)
        command_id = f"bench-{uuid.uuid4()}"
        entry = ledger_entry(command_id, n, datetime.fromtimestamp(at, UTC))
        yield LedgerRecord(command_id.encode(), entry.model_dump_json().encode(),
                           int(at * 1000), entry.state)


def recent_ids(ids: int, now: float) -> int:
    """How many of the writes fall in the last LEDGER_WHOLE_FOR_S (held whole with archiving)."""
    return sum(written_at(n, ids, now) > now - LEDGER_WHOLE_FOR_S for n in range(ids))


def sampled(n: int, ids: int) -> bool:
    """Spread over the 8 days, and the last writes (held whole with archiving)."""
    return n % max(1, ids // SAMPLES) == 0 or n >= ids - RECENT_SAMPLES


async def produce(bootstrap: str, topic: str, ids: int, now: float
                  ) -> list[tuple[str, str, float]]:
    """Write the records (batched: futures awaited a window at a time); return the sampled
    ones' (key, state, written_at)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50,
                                max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    samples, window = [], []
    deadline = time.monotonic() + PRODUCE_TIMEOUT_S
    try:
        for n, record in enumerate(ledger_records(ids, now)):
            window.append(await producer.send(topic, record.value, key=record.key,
                                              timestamp_ms=record.timestamp_ms))
            if sampled(n, ids):
                samples.append((record.key.decode(), record.state, record.timestamp_ms / 1000))
            if len(window) >= PRODUCE_WINDOW:
                await asyncio.gather(*window)
                window.clear()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"writing {ids:,} records took over {PRODUCE_TIMEOUT_S}s")
        await asyncio.gather(*window)
    finally:
        await producer.stop()
    return samples


def own_kb(field: str) -> int:
    """VmRSS (resident now) or VmHWM (its peak) of this process, in KiB."""
    kb = status_kb("self", field)
    if kb is None:
        raise RuntimeError(f"no {field} in /proc/self/status")
    return kb


@dataclass
class Load:
    """One load of the topic, as the child process measured it."""

    archiving: bool
    load_s: float
    rss_kb: int  # after the load, minus before
    peak_kb: int  # the process's peak, minus RSS before the load
    traced_kb: int | None  # tracemalloc's current after the load (--tracemalloc only)
    entries: int
    hit_us: float
    miss_us: float
    failures: list[str]


async def load(bootstrap: str, topic: str, archiving: bool, samples: list[list[Any]],
               trace: bool) -> Load:
    table = CompactedTable(bootstrap, topic, decode_ledger, relaxed_follow=True,
                           stands=ledger_stands, max_age_s=MAX_AGE_S,
                           archiving=LEDGER_ARCHIVING if archiving else None)
    gc.collect()
    before = own_kb("VmRSS")
    if trace:
        tracemalloc.start()
    began, began_at = time.perf_counter(), time.time()
    await asyncio.wait_for(table.start(), LOAD_TIMEOUT_S)
    load_s, loaded_at = time.perf_counter() - began, time.time()
    traced = tracemalloc.get_traced_memory()[0] // 1024 if trace else None
    tracemalloc.stop()
    try:
        gc.collect()
        rss, peak = own_kb("VmRSS") - before, own_kb("VmHWM") - before
        failures = check(table, samples, archiving, began_at, loaded_at)
        hits = [key.encode() for key, _, _ in samples]
        misses = [f"bench-{uuid.uuid4()}".encode() for _ in range(len(samples))]
        return Load(archiving, load_s, rss, peak, traced, len(table),
                    lookup_us(table, hits), lookup_us(table, misses), failures)
    finally:
        await table.stop()


def check(table: HeldValues[LedgerEntry], samples: list[list[Any]], archiving: bool,
          began_at: float, loaded_at: float) -> list[str]:
    """Each sampled id read with its state, with its result unless archived (written over
    LEDGER_WHOLE_FOR_S before the load: around that edge either is right); ids never written
    not found."""
    failures = []
    for key, state, at in samples:
        entry = table.get(key.encode())
        if entry is None or entry.state != state:
            failures.append(f"{key} written {state}: read {entry}")
            continue
        archived = archiving and at < began_at - LEDGER_WHOLE_FOR_S
        whole = not archiving or at > loaded_at - LEDGER_WHOLE_FOR_S
        if (whole and (entry.result is None or entry.result.command_id != key)) or (
                archived and entry.result is not None):
            failures.append(f"{key}: result {'missing' if whole else 'held'} ({entry})")
    for _ in range(SAMPLES):
        key = f"bench-{uuid.uuid4()}"
        if (entry := table.get(key.encode())) is not None:
            failures.append(f"{key}, never written, read as {entry}")
    return failures


def lookup_us(table: HeldValues[LedgerEntry], keys: list[bytes]) -> float:
    """Mean over LOOKUPS lookups, cycling through `keys` (hits already decoded by check)."""
    began = time.perf_counter()
    for n in range(LOOKUPS):
        table.get(keys[n % len(keys)])
    return (time.perf_counter() - began) / LOOKUPS * 1e6


def load_in_child(bootstrap: str, topic: str, archiving: bool, samples: Path, workdir: Path,
                  trace: bool) -> Load:
    """`python -m bench.ledger load ...` in a fresh interpreter: its RSS is the table's."""
    out = workdir / f"load-{'archiving' if archiving else 'whole'}-{int(trace)}.json"
    args = [sys.executable, "-m", "bench.ledger", "load", bootstrap, topic,
            "archiving" if archiving else "whole", str(samples), str(out)]
    subprocess.run([*args, *(["--tracemalloc"] if trace else [])], env=child_env({}),
                   check=True, timeout=LOAD_TIMEOUT_S + 120)
    return Load(**json.loads(out.read_text()))


def child_main(argv: list[str]) -> int:
    bootstrap, topic, mode, samples, out = argv[:5]
    result = asyncio.run(load(bootstrap, topic, mode == "archiving",
                              json.loads(Path(samples).read_text()), "--tracemalloc" in argv))
    Path(out).write_text(json.dumps(asdict(result)))
    return 0


def projection(ids: int, recent: int, whole: Load, archived: Load) -> tuple[float, float]:
    """Bytes for PROJECTED_IDS: all whole, and with the last hour's whole and the rest at the
    archived bytes per id (this run's RSS less its recent ids at the whole figure)."""
    whole_per_id = whole.rss_kb * 1024 / ids
    archived_per_id = (archived.rss_kb * 1024 - recent * whole_per_id) / (ids - recent)
    return (whole_per_id * PROJECTED_IDS,
            whole_per_id * PROJECTED_WHOLE + archived_per_id * (PROJECTED_IDS - PROJECTED_WHOLE))


def report(ids: int, recent: int, whole: Load, archived: Load) -> None:
    print(f"{'':<18} {'load s':>8} {'records/s':>10} {'RSS +MB':>8} {'peak +MB':>9} {'B/id':>6} "
          f"{'entries':>10} {'hit us':>7} {'miss us':>8}  check")
    for name, run in (("whole (baseline)", whole), ("archiving", archived)):
        traced = f", tracemalloc {run.traced_kb / 1024:.1f} MB" if run.traced_kb else ""
        print(f"{name:<18} {run.load_s:>8.1f} {ids / run.load_s:>10,.0f} "
              f"{run.rss_kb / 1024:>8.1f} {run.peak_kb / 1024:>9.1f} "
              f"{run.rss_kb * 1024 / ids:>6.0f} {run.entries:>10,} {run.hit_us:>7.1f} "
              f"{run.miss_us:>8.1f}  {'ok' if not run.failures else 'FAIL'}{traced}")
        for failure in run.failures[:5]:
            print(f"  {failure}")
    all_whole, with_archive = projection(ids, recent, whole, archived)
    print(f"ratios archiving/whole: memory {archived.rss_kb / max(whole.rss_kb, 1):.3f}, "
          f"peak {archived.peak_kb / max(whole.peak_kb, 1):.3f}, "
          f"load time {archived.load_s / whole.load_s:.2f}")
    print(f"projected, 8 days at {PROJECTED_PER_S} sends/s ({PROJECTED_IDS:,} ids, "
          f"{PROJECTED_WHOLE:,} in the last hour): whole {all_whole / 1e9:.2f} GB, "
          f"archiving {with_archive / 1e9:.3f} GB; read at start in "
          f"{PROJECTED_IDS / ids * whole.load_s:.0f} s whole, "
          f"{PROJECTED_IDS / ids * archived.load_s:.0f} s archiving (at these rates)")
    if ids < 5 * DEFAULT_IDS:
        # Measured here: +41.7 MB at 1,000,000 ids, +83.8 MB at 5,000,000: 11 bytes an id.
        print("  (the reading's own RSS, some 30 MB, is counted in the archived bytes per id: "
              "projected from fewer ids, archiving is overstated; --ids 5000000 is closest)")


async def create_topic(bootstrap: str, topic: str) -> None:
    await ensure_topics(bootstrap, partitions=6, replication_factor=1,
                        specs=(TopicSpec(topic, "bench ledger", OUTBOUND_SENT.config),))


async def delete_topic(bootstrap: str, topic: str) -> None:
    """Not left behind on a cluster given by KAFKA_BOOTSTRAP_SERVERS (hundreds of MB)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def run(bootstrap: str, workdir: Path, ids: int, trace: bool) -> int:
    topic = f"bench.ledger.{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(bootstrap, topic))
    try:
        now = time.time()
        began = time.perf_counter()
        samples = asyncio.run(produce(bootstrap, topic, ids, now))
        recent = recent_ids(ids, now)
        print(f"ledger: {ids:,} ids over 8 days ({recent:,} in the last hour, one in "
              f"{FAILED_EVERY} failed) written to {topic} in {time.perf_counter() - began:.0f}s")
        path = workdir / "samples.json"
        path.write_text(json.dumps(samples))
        whole, archived = (load_in_child(bootstrap, topic, archiving, path, workdir, False)
                           for archiving in (False, True))
        report(ids, recent, whole, archived)
        if trace:
            print("with tracemalloc (its own loads; times not comparable):")
            report(ids, recent, *(load_in_child(bootstrap, topic, archiving, path, workdir, True)
                                  for archiving in (False, True)))
        return 1 if whole.failures or archived.failures else 0
    finally:
        asyncio.run(delete_topic(bootstrap, topic))


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench ledger")
    parser.add_argument("--ids", type=int, default=DEFAULT_IDS,
                        help=f"command ids written (default {DEFAULT_IDS:,})")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="two more loads with tracemalloc on (about 3x slower)")
    args, _ = parser.parse_known_args(argv)  # the benchmarks' names are not ours
    if not MIN_IDS <= args.ids <= MAX_IDS:
        parser.error(f"--ids in [{MIN_IDS:,}, {MAX_IDS:,}]")
    return args


def main() -> int:
    args = options(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp, \
            kafka(Path(tmp)) as bootstrap:
        return run(bootstrap, Path(tmp), args.ids, args.tracemalloc)


if __name__ == "__main__":
    if sys.argv[1:2] == ["load"]:
        raise SystemExit(child_main(sys.argv[2:]))
    raise SystemExit(main())
