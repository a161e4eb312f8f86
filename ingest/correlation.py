"""Correlation for providers whose send API carries no reference of ours (Infobip Omnichat).

Their status reports name only the provider's message id. The sender's results map that id to
the command id, so ingest follows the results topic and fills `correlation_id` from it. A
report can outrun the result it belongs to (the provider answers the send, then reports at
once), so a miss waits briefly for the index to catch up; only these providers pay that.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from switchboard.clients import KafkaTarget, kafka_options, stop_consumer, topic_name
from switchboard.events import EventType, MessageEvent
from switchboard.logs import get_logger
from switchboard.producer import NEW_PARTITIONS_WITHIN_S
from switchboard.throttle import ThrottledLog
from switchboard.topics import OUTBOUND_RESULTS, topic_partitions

log = get_logger(__name__)
# Kafka away (at serve's start, say): tried again after this, doubling up to the cap, and
# from the first wait again once Kafka has answered. The cap is serve's own for connecting:
# until the index has read the results, /readyz answers 503, so a Kafka back is soon seen.
RETRY_S = 2.0
RETRY_MAX_S = 10.0


class CorrelationIndex:
    def __init__(self, kafka: KafkaTarget, providers: frozenset[str], *,
                 lookback_s: float = 86_400, max_entries: int = 1_000_000,
                 wait_s: float = 1.0, topic: str = OUTBOUND_RESULTS.name) -> None:
        self.kafka = kafka
        self.topic = topic
        self.providers = providers
        self.lookback_s = lookback_s
        self.max_entries = max_entries
        self.wait_s = wait_s
        # By _key(provider, account, provider message id), oldest first: one string, in a plain
        # dict, half the memory of a tuple of three in an OrderedDict (235 bytes an entry, not
        # 462; up to max_entries in every ingest process).
        self._commands: dict[str, str] = {}
        self._grew = asyncio.Event()
        # Set once the index holds every result that was on the topic when it started: until
        # then ingest is not ready, and a replay of old reports waits, so that no report
        # misses a result that is there.
        self.caught_up = asyncio.Event()
        self.results_read = 0  # progress, for whoever waits on caught_up
        self._task: asyncio.Task[None] | None = None
        self._answered = False  # whether Kafka answered since the last interruption
        # An outage fails every try: said in full once a minute, the other tries counted.
        self._interruptions = ThrottledLog(log)

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._interruptions.flush()

    async def command_for(self, provider: str, account: str, message_id: str) -> str | None:
        key = _key(provider, account, message_id)
        deadline = time.monotonic() + self.wait_s
        while (found := self._commands.get(key)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._task is None or self._task.done():
                return None
            self._grew.clear()
            try:
                await asyncio.wait_for(self._grew.wait(), remaining)
            except TimeoutError:
                return None
        return found

    async def _follow(self) -> None:
        """Read results from `lookback_s` ago onwards; reconnect on failure, less often while
        Kafka stays away (it logged a warning every 2 s for as long as it was)."""
        delay_s = RETRY_S
        while True:
            self._answered = False
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep following; lookups just miss
                if self._answered:  # read since the last failure: a new interruption
                    delay_s = RETRY_S
                    self._interruptions.flush()
                self._interruptions(logging.WARNING, "correlation index interrupted",
                                    {"error_type": type(exc).__name__}, error=repr(exc),
                                    retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RETRY_MAX_S)

    async def _read(self) -> None:
        partitions = await topic_partitions(self.kafka, self.topic)
        if not partitions:
            # Ingest creates the topics as it starts, maybe after this looked: following no
            # partitions would index nothing, for good. _follow looks again shortly.
            raise LookupError(f"topic {topic_name(self.kafka, self.topic)} does not exist yet")
        consumer = AIOKafkaConsumer(**kafka_options(self.kafka, "ingest-correlation"),
                                    enable_auto_commit=False, fetch_max_wait_ms=100,
                                    metadata_max_age_ms=int(NEW_PARTITIONS_WITHIN_S * 1000))
        try:
            await consumer.start()  # in the try: its client is closed if start fails
            consumer.assign(partitions)
            since = int((time.time() - self.lookback_s) * 1000)
            starts = await consumer.offsets_for_times({tp: since for tp in partitions})
            for tp in partitions:
                found = starts.get(tp)
                if found is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, found.offset)
            ends = await consumer.end_offsets(partitions)
            self._answered = True
            while True:
                partitions = await _read_new_partitions(consumer, partitions)
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    self.results_read += len(records)
                    for record in records:
                        self._index(record.value)
                if batch:
                    self._grew.set()
                if not self.caught_up.is_set() and all(
                        [await consumer.position(tp) >= end for tp, end in ends.items()]):
                    self.caught_up.set()
                    log.info("correlation index caught up", results=self.results_read,
                             commands=len(self._commands))
        finally:
            await stop_consumer(consumer)

    def _index(self, value: bytes) -> None:
        try:
            result = orjson.loads(value)
            provider, message_id = result.get("provider"), result.get("provider_message_id")
            if provider not in self.providers or not message_id:
                return
            key = _key(provider, result["account"], message_id)
            command_id = result["command_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return  # not a result we understand: nothing to index
        self._commands.pop(key, None)  # indexed again: the newest, the last to go
        self._commands[key] = command_id
        while len(self._commands) > self.max_entries:
            del self._commands[next(iter(self._commands))]


def _key(provider: str, account: str, message_id: str) -> str:
    return f"{provider}\x00{account}\x00{message_id}"


async def _read_new_partitions(consumer: AIOKafkaConsumer,
                               partitions: list[TopicPartition]) -> list[TopicPartition]:
    """The partitions read, with those added to the topic since (kafka-topics.sh --alter
    --partitions) read from their first record: the results the sender writes there would be
    missed until ingest restarts. Those read so far go on from where they are."""
    topic = partitions[0].topic
    listed = consumer.partitions_for_topic(topic) or set()
    new = sorted({TopicPartition(topic, p) for p in listed} - set(partitions))
    if not new:
        return partitions
    at = {tp: await consumer.position(tp) for tp in partitions}
    partitions = [*partitions, *new]
    consumer.assign(partitions)  # forgets every position: no await until they are back
    for tp, offset in at.items():
        consumer.seek(tp, offset)
    await consumer.seek_to_beginning(*new)
    log.info("correlation index reads partitions added to its topic", topic=topic,
             partitions=[tp.partition for tp in new])
    return partitions


async def correlate(index: CorrelationIndex, events: list[MessageEvent]) -> list[MessageEvent]:
    """The events, each status report with the command id it answers where the index knows it.

    The batch's reports are looked up together: each miss waits up to the index's wait, and one
    after another a batch of reports on messages we did not send took that many seconds, past
    the provider's timeout."""

    async def correlated(event: MessageEvent) -> MessageEvent:
        if (event.type is not EventType.STATUS or event.correlation_id is not None
                or not event.message_id):
            return event
        command = await index.command_for(event.provider, event.account, event.message_id)
        if command is None:
            return event
        return event.model_copy(update={"correlation_id": command})

    return list(await asyncio.gather(*map(correlated, events)))
