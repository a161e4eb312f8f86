"""What replay says when its window meets a record aiokafka cannot read."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from switchboard.clients import KafkaTarget, kafka_options, stop_consumer, topic_name
from switchboard.records import find_unreadable
from switchboard.topics import topic_partitions


async def unreadable_said(kafka: KafkaTarget, topic: str, since_ms: int | None,
                          read_to: dict[int, int], exc: UnicodeDecodeError) -> str:
    """What to say when the window meets a record aiokafka cannot read (a header key that is
    not UTF-8): which it is, found by reading each partition again from where the window had
    got to (aiokafka's error names neither partition nor offset), and the way past it."""
    partitions = await topic_partitions(kafka, topic)
    consumer = AIOKafkaConsumer(**kafka_options(kafka, "replay"), enable_auto_commit=False,
                                auto_offset_reset="earliest")
    found = None
    try:
        await consumer.start()
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        if since_ms is None:
            starts = await consumer.beginning_offsets(partitions)
        else:
            at = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
            starts = {tp: ends[tp] if at[tp] is None else at[tp].offset for tp in partitions}
        for tp in partitions:
            consumer.seek(tp, max(starts[tp], read_to.get(tp.partition, 0)))
        for tp in partitions:
            while found is None and (position := await consumer.position(tp)) < ends[tp]:
                try:
                    if not await consumer.getmany(tp, timeout_ms=1000):
                        break  # no answer in time: not found here
                except UnicodeDecodeError:
                    consumer.seek(tp, position)
                    found = await find_unreadable(consumer, [tp])
    finally:
        await stop_consumer(consumer)
    where = f"a record of {topic_name(kafka, topic)}"
    see = ""
    if found is not None:
        where = f"the record at {found}"
        see = (f"; kcat shows it: kcat -C -t {found.partition.topic} -p "
               f"{found.partition.partition} -o {found.offset} -c 1 -J")
    return (f"aiokafka cannot read {where} (a header key that is not UTF-8, there or before it "
            f"in its producer's batch: {exc}), so replay stopped there; letters of the window "
            "after it were not replayed (a window starting after it, --since a later time, "
            f"does not read it){see}")
