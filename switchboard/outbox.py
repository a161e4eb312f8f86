"""Put one outbound command on its topic and, if asked, wait for the sender's result.

What `switchboard send` does; also the shortest example of producing commands from your own
code: build an OutboundCommand, key it with `command_record`, publish with acks=all.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from switchboard.clients import KafkaTarget, kafka_options, stop_consumer, topic_name
from switchboard.commands import OutboundCommand, OutboundResult
from switchboard.producer import DurableProducer
from switchboard.records import command_record
from switchboard.topics import OUTBOUND, OUTBOUND_RESULTS, topic_partitions

# Kafka answering none of the fetches of results for this long, as a wait ends, is said as
# Kafka not answering rather than as no result (no sender?): a fetch is answered every half
# second while Kafka is there, results or not. A broker that stops answering without closing
# its connections (paused, a network partition) gets no error from aiokafka for minutes.
SILENT_AFTER_S = 3.0


class KafkaSilent(Exception):
    """The command was published, but Kafka answered none of the fetches of results for the
    last `silent_s` of the wait (a broker paused or out of reach): whether the sender has
    published a result is not known."""

    def __init__(self, silent_s: float) -> None:
        super().__init__(f"Kafka answered none of the fetches of results for {silent_s:.0f} s")
        self.silent_s = silent_s


class NoTopic(LookupError):
    """The outbound or the results topic does not exist: nothing has created the topics on
    this cluster (or under this prefix) yet. Found before publishing: nothing was sent."""


async def send_command(kafka: KafkaTarget, command: OutboundCommand, provider: str, *,
                       wait_s: float = 0.0, on_published: Callable[[], object] | None = None
                       ) -> OutboundResult | None:
    """Publish the command; with `wait_s`, its result once the sender publishes it, or None
    when none came in that time (KafkaSilent when Kafka was not answering at its end).
    Results are read from before the publish, so a fast sender's answer is not missed.
    `on_published` is called once Kafka has acknowledged the command, before the wait."""
    results = await _results_from_now(kafka) if wait_s > 0 else None
    try:
        if not await topic_partitions(kafka, OUTBOUND.name):
            # Else the producer waits for the topic's metadata, aiokafka logging an error line.
            raise NoTopic(_missing(kafka, OUTBOUND.name))
        producer = DurableProducer(kafka, role="send")
        await producer.start()
        try:
            await producer.publish([command_record(command, provider)])
            if on_published is not None:
                on_published()
        finally:
            await producer.stop()
        if results is None:
            return None
        return await _result_for(results, command.id, wait_s)
    finally:
        if results is not None:
            await stop_consumer(results)


def _missing(kafka: KafkaTarget, topic: str) -> str:
    # `send` creates no topics: nothing could answer a command on a cluster without them.
    return (f"topic {topic_name(kafka, topic)} does not exist: `switchboard serve`, `run` or "
            "a worker creates the topics at start-up; start them first")


async def _results_from_now(kafka: KafkaTarget) -> AIOKafkaConsumer:
    partitions = await topic_partitions(kafka, OUTBOUND_RESULTS.name)
    if not partitions:
        raise NoTopic(_missing(kafka, OUTBOUND_RESULTS.name))
    consumer = AIOKafkaConsumer(**kafka_options(kafka, "send"), enable_auto_commit=False)
    try:
        await consumer.start()
        consumer.assign(partitions)
        for partition, end in (await consumer.end_offsets(partitions)).items():
            consumer.seek(partition, end)
    except BaseException:
        await stop_consumer(consumer)
        raise
    return consumer


async def _result_for(consumer: AIOKafkaConsumer, command_id: str,
                      wait_s: float) -> OutboundResult | None:
    """The first result for the id (a repeat of it would be identical)."""
    subject = command_id.encode()
    began, deadline = time.time(), time.monotonic() + wait_s
    while (remaining := deadline - time.monotonic()) > 0:
        batch = await consumer.getmany(timeout_ms=max(1, int(min(remaining, 0.5) * 1000)))
        for records in batch.values():
            for record in records:
                # The header names the command: other results are not decoded.
                if ("ce_subject", subject) in record.headers:
                    return OutboundResult.from_json(record.value)
    # aiokafka's time of the last fetch answered, per partition (wall clock, in ms), as tail
    # judges Kafka's silence.
    answered = max((consumer.last_poll_timestamp(tp) or 0
                    for tp in consumer.assignment()), default=0) / 1000
    if (silent_s := time.time() - max(answered, began)) >= SILENT_AFTER_S:
        raise KafkaSilent(silent_s)
    return None
