"""Put kept webhooks and records through again, once what failed them is fixed.

Ingest keeps each authenticated request it could not turn into events as a dead letter (stage
`normalize`, the request inside); a worker keeps each record its handler gave up on (stage
`worker:<name>`, the record inside). After the fix (a normalizer that now reads the payload, a
bot that no longer crashes), replay reads the dead letters of a time window and publishes again
what each stands for: the events its request gives now, or the record as it was on its topic.
The raw topic replays the same way, to publish a window's events again after a normalizer gave
wrong ones.

Nothing is authenticated again (each request was when it arrived, and its secret may have been
rotated since) and nothing is dead-lettered again: a letter that still fails is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ingest.kept import Kept, Selection, Source, Unreplayable, read_kept
from ingest.replay_unreadable import unreadable_said
from ingest.replayer import Outcome, Replayer, ReplayError
from switchboard.clients import KafkaTarget
from switchboard.producer import DurableProducer, PublishError
from switchboard.topics import DEAD_LETTER, RAW
from switchboard.window import WindowError, read_window

SOURCE_TOPICS: dict[Source, str] = {"dead-letter": DEAD_LETTER.name, "raw": RAW.name}
# Letters are published together, so a window of thousands is not one round trip each.
CHUNK_LETTERS = 200
CHUNK_BYTES = 8 * 1024 * 1024
# A chunk Kafka refused for good is published letter by letter; meanwhile its client is being
# replaced (its other answers), which this long covers.
ALONE_WAIT_S = 30.0
ALONE_RETRY_S = 0.5
ALONE_ATTEMPTS = int(ALONE_WAIT_S / ALONE_RETRY_S) + 1
# How often a long read is said to go on: a narrow filter over a day of the raw topic (`--id`)
# read millions of records for minutes with nothing on the screen.
PROGRESS_S = 10.0
# Results are read from this long before the window: a report follows its send by up to days.
CORRELATION_LOOKBACK_S = 86_400.0


@dataclass
class Summary:
    """The counts the command ends with: outcomes, records published, letters it could not
    read (not matched against the filters), the asked-for ids it never met or met only left
    out by the other filters, and whether a stop ended it before the end of the window."""

    counts: dict[str, int] = field(default_factory=dict)
    records: int = 0
    read: int = 0  # records of the window read, letters or not
    unreadable: int = 0
    ids_not_found: list[str] = field(default_factory=list)
    # An asked-for id met only in letters the other filters left out (`--id X --reason Y`):
    # it was said "not found", as if misspelt. Each with the filters that left it out.
    ids_left_out: dict[str, list[str]] = field(default_factory=dict)
    stopped: bool = False
    # Letters of the window the filters left out, by stage: a `--stage` that names no stage
    # there (a custom bot's is `worker:bot-<module>-<function>`) is then said, not a bare 0 of 0.
    unselected: dict[str, int] = field(default_factory=dict)
    # And by account: replay reads no accounts file, so a misspelt `--account` is said so.
    unselected_accounts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.outcome] = self.counts.get(outcome.outcome, 0) + 1
        self.records += len(outcome.records)


async def replay(kafka: KafkaTarget, *, source: Source, since_ms: int | None,
                 until_ms: int | None, selection: Selection, dry_run: bool,
                 include_old: bool = False, emit: Callable[[bytes], None],
                 stop: asyncio.Event | None = None,
                 progress: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 after: Mapping[int, int] | None = None,
                 settled: dict[int, int] | None = None) -> Summary:
    """Replay the selected records of the window, each reported to `emit` as a JSON line
    once its records are acknowledged (acks=all), or at once with `dry_run`; `progress` is
    told every PROGRESS_S (by `clock`) how many records of the window were read.

    Once `stop` is set, nothing more is read or published: the letters already handed to
    Kafka are waited for and reported, so every letter published has its line.

    `after` (partition: offset) starts those partitions past the offset; `settled` is kept
    up to date, even as a failure ends it, with the same for where it got to: in each
    partition, the offset of the last record whose letter was reported or that needed none
    (left out, unreadable) with every letter before it reported."""
    stop = stop or asyncio.Event()
    settled = {} if settled is None else settled
    # Results from a day before the window (a report follows its send); with no start, all.
    now = time.time()
    lookback_s = now - since_ms / 1000 + CORRELATION_LOOKBACK_S if since_ms is not None else now
    replayer = Replayer(kafka, correlation_lookback_s=lookback_s, include_old=include_old)
    producer = None if dry_run else DurableProducer(kafka, role="replay", timeout_s=30)
    summary = Summary()
    chunk: list[Outcome] = []
    chunk_bytes = 0
    # The asked-for ids not met yet: not a set of every id read, which a window of the raw
    # topic (a day is millions of requests) grew by a gigabyte or so, for no use without --id.
    not_found = set(selection.ids)
    left_out: dict[str, set[str]] = {}  # asked-for ids met, left out: by which filters
    publishing: asyncio.Future[None] | None = None
    read_to: dict[int, int] = {}  # partition: the offset after the last record read

    def settle(partition: int, offset: int) -> None:
        settled[partition] = max(settled.get(partition, -1), offset)

    def unacknowledged(letters: int, exc: PublishError) -> ReplayError:
        return ReplayError(f"Kafka did not acknowledge the records of the {letters} letters "
                           f"after those reported above (some may be stored): {exc}; the "
                           f"{sum(summary.counts.values())} reported above are stored")

    def report(outcome: Outcome) -> None:
        summary.add(outcome)
        # A partition's letters are reported in its order: those before this one are.
        settle(outcome.kept.partition, outcome.kept.offset)
        emit(outcome.line())

    async def alone(producer: DurableProducer, outcome: Outcome, letters: int) -> Outcome:
        """The letter published on its own: replayed, or failing if Kafka refuses its records
        for good. Kafka's other answers are waited out a while (its client is being replaced
        after the refused batch), then end the replay as a chunk's do; `letters`: the ones
        of the chunk not reported yet, this one included."""
        deadline = time.monotonic() + ALONE_WAIT_S
        for attempt in range(ALONE_ATTEMPTS):
            try:
                await producer.publish(outcome.records)
                return outcome
            except PublishError as exc:
                if exc.lasting:
                    return dataclasses.replace(
                        outcome, outcome="failing", records=[],
                        reason=f"{exc}, for good: not replayed (of a letter of several "
                               "records, those Kafka took are stored)")
                if attempt + 1 == ALONE_ATTEMPTS or time.monotonic() >= deadline:
                    raise unacknowledged(letters, exc) from exc
            await asyncio.sleep(ALONE_RETRY_S)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def publish(outcomes: list[Outcome], read_up_to: dict[int, int]) -> None:
        """Publish and report the chunk; then every record read before it is settled."""
        await published(outcomes)
        for partition, end in read_up_to.items():
            settle(partition, end - 1)

    async def published(outcomes: list[Outcome]) -> None:
        if producer is not None:
            try:
                await producer.publish([record for o in outcomes for record in o.records])
            except PublishError as exc:
                if not exc.lasting:
                    raise unacknowledged(len(outcomes), exc) from exc
                # A record Kafka refuses for what it is (larger than its topic takes, as the
                # cluster has it now; a letter a foreign producer wrote) stopped every run of
                # the window there. Each letter alone: that one fails, the others go on. Those
                # of the chunk Kafka had taken are published again (the same ids).
                for done, outcome in enumerate(outcomes):
                    report(await alone(producer, outcome, len(outcomes) - done))
                return
        for outcome in outcomes:
            report(outcome)

    async def flush() -> None:
        nonlocal chunk_bytes, publishing
        outcomes = list(chunk)
        chunk.clear()
        chunk_bytes = 0
        # Shielded: a stop cancels the reading, not a publish Kafka may already have taken.
        publishing = asyncio.ensure_future(publish(outcomes, dict(read_to)))
        await asyncio.shield(publishing)

    def stopped() -> bool:
        """Asked before each letter and each publish: a fetch in hand (up to 500 records) is
        handled without a wait, so the cancel a stop sends would come after the next chunk
        had been handed to Kafka."""
        if stop.is_set():
            summary.stopped = True
        return summary.stopped

    async def read() -> None:
        nonlocal chunk_bytes
        window = read_window(kafka, SOURCE_TOPICS[source], role="replay", since_ms=since_ms,
                             until_ms=until_ms, after=after)
        next_said = clock() + PROGRESS_S
        async with contextlib.aclosing(window) as records:
            while True:
                try:
                    record = await anext(records)
                except StopAsyncIteration:
                    break
                except UnicodeDecodeError as exc:  # aiokafka parsing a header key
                    raise ReplayError(await unreadable_said(kafka, SOURCE_TOPICS[source], since_ms,
                                                            read_to, exc)) from None
                if stopped():
                    return
                read_to[record.partition] = record.offset + 1
                summary.read += 1
                if progress is not None and clock() >= next_said:
                    progress(summary.read)
                    next_said = clock() + PROGRESS_S
                try:
                    kept = read_kept(source, record.value, record.timestamp,
                                     partition=record.partition, offset=record.offset)
                except Unreplayable:
                    summary.unreadable += 1
                    continue
                if not selection.matches(kept):
                    summary.unselected[kept.stage] = summary.unselected.get(kept.stage, 0) + 1
                    summary.unselected_accounts[kept.account] = \
                        summary.unselected_accounts.get(kept.account, 0) + 1
                    if kept.id in selection.ids:
                        left_out.setdefault(kept.id, set()).update(left_out_by(selection, kept))
                    continue
                not_found.discard(kept.id)
                outcome = await replayer.outcome(kept)
                if outcome.outcome == "replayed" and dry_run:
                    outcome = dataclasses.replace(outcome, outcome="replayable")
                chunk.append(outcome)
                chunk_bytes += sum(len(r.value) for r in outcome.records)
                if len(chunk) >= CHUNK_LETTERS or chunk_bytes >= CHUNK_BYTES:
                    if stopped():
                        return
                    await flush()
        if chunk and stopped():
            return
        await flush()

    reading: asyncio.Task[None] | None = None
    try:
        if producer is not None:
            await producer.start()
        reading = asyncio.create_task(read())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not reading.done():
            # Outcomes worked out but not yet handed to Kafka are dropped: no line, not stored.
            reading.cancel()
            await asyncio.wait([reading])
            summary.stopped = True
            if publishing is not None:
                await publishing
        if not reading.cancelled():
            reading.result()
    except WindowError as exc:
        raise ReplayError(str(exc)) from exc
    finally:
        if reading is not None:
            reading.cancel()
        await replayer.close()
        if producer is not None:
            await producer.stop()
    summary.ids_not_found = sorted(not_found - left_out.keys())
    summary.ids_left_out = {kept_id: sorted(left_out[kept_id])
                            for kept_id in sorted(not_found & left_out.keys())}
    return summary


def left_out_by(selection: Selection, kept: Kept) -> list[str]:
    """The filters besides the ids that leave `kept` out, by name (provider, account, stage,
    reason): each tried alone, only for a letter of an asked-for id."""
    alone = {"provider": Selection(providers=selection.providers),
             "account": Selection(accounts=selection.accounts),
             "stage": Selection(stages=selection.stages),
             "reason": Selection(reasons=selection.reasons)}
    return [name for name, one in alone.items() if not one.matches(kept)]
