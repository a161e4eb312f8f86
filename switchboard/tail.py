"""`switchboard tail`: watch what lands on the topics, for people building on top."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import select
import sys
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from switchboard.clients import (
    KafkaConnection,
    KafkaTarget,
    as_connection,
    kafka_options,
    stop_consumer,
)
from switchboard.records import FIND_UNREADABLE_MAX, find_unreadable
from switchboard.topics import ALL_TOPICS, MESSAGE_INBOUND, MESSAGE_STATUS, topic_partitions


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def decode(record: Any) -> dict[str, Any]:
    """A record as one JSON-friendly dict: where it is, its key, its CloudEvents headers, value.

    A value or a header may be null (a tombstone on the compacted opt-out and sent topics; a
    header without a value): shown as null, so tail does not stop at such a record."""
    value: Any = None
    if record.value is not None:
        try:
            value = orjson.loads(record.value)
            orjson.dumps(value)  # orjson reads 1,024 levels of nesting but writes only 254
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            value = _text(record.value)
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": _text(record.key),
        "headers": {k: _text(v) for k, v in record.headers or ()},
        "value": value,
    }


class UnknownTopic(ValueError):
    """A topic that is not in the cluster: aiokafka would wait for it forever, logging."""


def _unknown(connection: KafkaConnection, missing: list[str], existing: set[str]) -> str:
    """Name what is missing, the nearest name there is (a typo, or a short name of one of
    Switchboard's topics: `raw`), and what can be given instead: with a name prefix, the
    topics of this install, as `--topic` takes them (without the prefix)."""
    prefix = connection.name_prefix
    known = sorted(connection.plain_topic(t) for t in existing
                   if t.startswith(prefix) and not t.startswith("__"))
    candidates = known + sorted(OURS - set(known))
    guesses = [guess for name in map(connection.plain_topic, missing)
               for guess in _part_of_ours(name)
               or difflib.get_close_matches(name, candidates, n=1)]
    where = f"the topics named {prefix}<topic> are: " if prefix else "the cluster has: "
    said = f"no such topic: {', '.join(missing)} ({where}{', '.join(known) or 'none'})"
    return f"{said}; did you mean {' or '.join(dict.fromkeys(guesses))}?" if guesses else said


# At most this many of Switchboard's topics are suggested for a part of their names: `out` or
# `switchboard` names too many of them to be a guess at one.
MOST_PARTS = 3


def _part_of_ours(name: str) -> list[str]:
    """Switchboard's topics of which `name` is a part (`raw`, `dead-letter`, `results`): too
    short for difflib to call close, they were refused with no suggestion. A whole part
    between the dots first: `outbound` is switchboard.outbound.v1, not also its results."""
    given = name.lower()
    found = sorted(t for t in OURS if given in t.split(".")) or sorted(
        t for t in OURS if given in t)
    return found if len(found) <= MOST_PARTS else []


class CannotRead(Exception):
    """A fetch failed on a record aiokafka cannot read, which could then not be found."""


# How often tail asks the cluster for the topics' partitions: one added while it runs is
# read from its first record within this long.
PARTITIONS_CHECK_MS = 5000
# Switchboard's own topics: tail waits for one of these to be created (tail started before
# `serve`, `run` or a worker made them); any other missing name is taken for a typo.
OURS = frozenset(spec.name for spec in ALL_TOPICS)
TOPIC_CHECK_S = 1.0
# Kafka answering none of tail's fetches for this long is said on stderr, once, and so is its
# answering again. A broker that stops answering without closing its connections (a paused
# JVM, a network partition) gets no error from aiokafka for minutes: tail looked as if no
# record came. A fetch is answered every half second while Kafka is there, records or not.
SILENT_AFTER_S = 30.0
# Tail's other requests (its start: the cluster, its topics, where to start reading each
# partition) unanswered for this long are said so too: aiokafka asks where to start again
# every 40 s for as long as the partition's leader is silent, and tail waited without a word.
# As long as tail waits for Kafka to answer at all before it starts (cli.startup's 10 s).
START_SILENT_AFTER_S = 10.0
STARTS = "requests for where to start reading"
T = TypeVar("T")


class _Silence:
    """Whether Kafka has answered tail lately: its fetches, judged from aiokafka's time of the
    last fetch answered for each partition (wall clock, in ms), and its other requests, timed
    as tail waits for them."""

    def __init__(self) -> None:
        self.since = time.time()  # the fetches get their time from the start
        self.silent_since: float | None = None  # once said, until Kafka answers

    def check(self, consumer: AIOKafkaConsumer) -> None:
        now = time.time()
        answered = max((consumer.last_poll_timestamp(tp) or 0
                        for tp in consumer.assignment()), default=0) / 1000
        if self.silent_since is None:
            since = max(answered, self.since)
            if now - since > SILENT_AFTER_S:
                self._say_silent("fetches", since, now)
        elif answered > self.silent_since:
            self._say_answered(answered)

    async def answer(self, request: Awaitable[T], what: str) -> T:
        """What `request` (`what` tail asks of Kafka, but its fetches) returns, waited for
        as long as it takes: said on stderr once it has waited START_SILENT_AFTER_S, and again
        once answered. Whatever it raises is raised (aiokafka's own timeouts end some).

        Watched by a timer, not a task of its own: the fetch loop asks where the partitions
        are before every batch, which needs Kafka only after a reset (an offset out of range)
        and is otherwise answered at once; a task and a timed wait each time cost every batch
        a few turns of the event loop."""
        began = time.time()
        # Whether the timer went off (None: not yet), and whether the silence was said then.
        said: bool | None = None

        def say() -> None:
            nonlocal said
            said = self.silent_since is None  # else the fetches' silence was said already
            if said:
                self._say_silent(what, began, time.time())

        timer = asyncio.get_running_loop().call_later(START_SILENT_AFTER_S, say)
        try:
            answer = await request  # Ctrl-C meanwhile cancels the request itself
        finally:
            timer.cancel()
        if said is None:  # answered before the timer went off
            return answer
        if said:
            self._say_answered(time.time())
        self.since = time.time()  # no fetch was made meanwhile: theirs starts now
        return answer

    def _say_silent(self, what: str, since: float, now: float) -> None:
        self.silent_since = since
        print(f"warning: Kafka has answered none of tail's {what} for {now - since:.0f}s (a "
              "broker paused or out of reach); waiting for it (Ctrl-C stops)",
              file=sys.stderr, flush=True)

    def _say_answered(self, answered: float) -> None:
        assert self.silent_since is not None
        print(f"Kafka answers again (silent for {answered - self.silent_since:.0f}s)",
              file=sys.stderr, flush=True)
        self.silent_since = None


async def tail(kafka: KafkaTarget, topics: list[str] | None, *, from_beginning: bool = False,
               limit: int | None = None) -> None:
    """Print the records of `topics` (plain names, as in the docs; the connection's name
    prefix is added) as JSON lines."""
    connection = as_connection(kafka)
    plain = topics or [MESSAGE_INBOUND.name, MESSAGE_STATUS.name]
    wanted = [connection.topic(topic) for topic in plain]
    consumer = AIOKafkaConsumer(
        **kafka_options(kafka, "tail"),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        metadata_max_age_ms=PARTITIONS_CHECK_MS,
    )
    silence = _Silence()
    try:
        await silence.answer(consumer.start(), "requests to connect")
        created = await _until_created(consumer, connection, wanted, silence)
        # Assigned, not subscribed: without a group, aiokafka's subscription notices a new
        # partition only at its 5-minute metadata refresh, then starts every partition over
        # (from the end: the new one's records so far missed; --all: the topic printed again).
        # Asked of the cluster: the consumer's own metadata has no topics until it is told some.
        consumer.assign([tp for topic in plain for tp in await silence.answer(
            topic_partitions(kafka, topic), "requests for the topics' partitions")])
        # A topic created while tail waited holds only records written since: all of them.
        # (Not called without any: seek_to_beginning() of none means of every partition.)
        if new := [tp for tp in consumer.assignment() if tp.topic in created]:
            await silence.answer(consumer.seek_to_beginning(*new), STARTS)
        printed = 0
        while True:
            # Where each partition is, to go back to if the fetch fails on a record. Known
            # but at the start, for a partition added, and after a reset: then asked of Kafka.
            positions = await silence.answer(_positions(consumer), STARTS)
            try:
                batch = await consumer.getmany(timeout_ms=1000)
            except UnicodeDecodeError as exc:  # aiokafka parsing a header key
                batch = await _past_unreadable(consumer, positions, exc)
            for records in batch.values():
                for record in records:
                    sys.stdout.buffer.write(orjson.dumps(decode(record)) + b"\n")
                    printed += 1
                    if limit is not None and printed >= limit:
                        sys.stdout.flush()
                        return
            sys.stdout.flush()
            silence.check(consumer)
            if reader_gone():
                raise BrokenPipeError  # said by the command as a write to it would be
            await _follow_new_partitions(consumer, wanted, silence)
    finally:
        await stop_consumer(consumer)  # also one whose start failed, or whose broker is away


async def _positions(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    return {tp: await consumer.position(tp) for tp in consumer.assignment()}


def reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone: `tail | head -3` once head has its
    lines. A write would tell, but tail writes only when a record comes, which may be never:
    the pipeline hung until Ctrl-C. (POLLERR and POLLHUP are reported whatever is asked.)"""
    if not hasattr(select, "poll"):  # Windows: found at the next write instead
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # replaced by something without a descriptor
        return False
    poller = select.poll()
    poller.register(fd, 0)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


async def _until_created(consumer: AIOKafkaConsumer, connection: KafkaConnection,
                         wanted: list[str], silence: _Silence) -> set[str]:
    """The wanted topics that were missing and have been created since (waited for, if they
    are Switchboard's own); UnknownTopic for any other missing name."""
    existing = await silence.answer(consumer.topics(), "requests for the topics")
    missing = [topic for topic in wanted if topic not in existing]
    if unknown := [t for t in missing if connection.plain_topic(t) not in OURS]:
        raise UnknownTopic(_unknown(connection, unknown, existing))
    if missing:
        what = f"topic {missing[0]}" if len(missing) == 1 else f"topics {', '.join(missing)}"
        print(f"waiting for {what} to be created (Switchboard creates its topics when "
              "`serve`, `run` or a worker starts)", file=sys.stderr, flush=True)
    while [topic for topic in missing if topic not in existing]:
        await asyncio.sleep(TOPIC_CHECK_S)
        with contextlib.suppress(KafkaError):  # Kafka restarting meanwhile: waited for too
            existing = await consumer.topics()
    return set(missing)


async def _past_unreadable(consumer: AIOKafkaConsumer, positions: dict[TopicPartition, int],
                           exc: UnicodeDecodeError) -> dict[TopicPartition, list[Any]]:
    """The records up to one aiokafka cannot read, which is then skipped with a warning, with
    the rest of its producer's batch (aiokafka reads a batch from its start, so none after it
    can be read either). The failed fetch had moved the other partitions on without giving
    their records: they go back to where they were."""
    for tp, offset in positions.items():
        consumer.seek(tp, offset)
    found = await find_unreadable(consumer, sorted(positions))
    if found is None:  # not met again: nothing to name, nothing to skip
        topics = ", ".join(sorted({tp.topic for tp in positions}))
        raise CannotRead(f"aiokafka cannot read a record of {topics} (a header key that is "
                         f"not UTF-8: {exc})")
    if found.exact:
        tp, first = found.partition, found.offset
        after = await _next_readable(consumer, tp, first)
        which = f"offset {first}" if after == first + 1 else f"offsets {first}-{after - 1}"
        print(f"warning: skipped {tp.topic} partition {tp.partition} {which}: aiokafka "
              "cannot read them (a header key that is not UTF-8, there or before it in its "
              f"producer's batch: {exc}); another client shows them: kcat -C -t {tp.topic} "
              f"-p {tp.partition} -o {first} -c {after - first} -J",
              file=sys.stderr, flush=True)
    return {found.partition: found.before}


async def _next_readable(consumer: AIOKafkaConsumer, tp: TopicPartition, unreadable: int
                         ) -> int:
    """The first offset after `unreadable` that a fetch gets past (the end of its batch, or of
    the partition), left as the partition's position."""
    offset = unreadable + 1
    for _ in range(FIND_UNREADABLE_MAX):
        consumer.seek(tp, offset)
        try:
            await consumer.getmany(tp, timeout_ms=1000, max_records=1)
        except UnicodeDecodeError:
            offset += 1
            continue
        break
    consumer.seek(tp, offset)
    return offset


def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> set[TopicPartition]:
    """The topics' partitions as the consumer's latest metadata has them."""
    return {TopicPartition(topic, p) for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()}


async def _follow_new_partitions(consumer: AIOKafkaConsumer, topics: list[str],
                                 silence: _Silence) -> None:
    """Add the partitions the topics gained since the last look, read from their first record
    (all of it was written while tail ran); the others go on where they were."""
    assigned = consumer.assignment()
    added = _partitions(consumer, topics) - assigned
    if not added:
        return
    # assign() starts every partition afresh: carry over the positions (of what was printed).
    positions = await silence.answer(_positions(consumer), STARTS)
    consumer.assign(list(assigned | added))
    for tp, offset in positions.items():
        consumer.seek(tp, offset)
    await silence.answer(consumer.seek_to_beginning(*added), STARTS)
