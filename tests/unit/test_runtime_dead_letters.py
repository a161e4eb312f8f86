"""Dead letters from the worker runtime, without a broker: each one must fit its topic, or the
record it stands for can be neither kept nor skipped."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
from aiokafka import TopicPartition
from pydantic import ValidationError

from consumers.handling import Context, PoisonRecord, Record
from consumers.runtime import WorkerRuntime
from switchboard.events import MessageEvent
from switchboard.producer import record_size
from switchboard.topics import DEAD_LETTER
from tests.fakes import KeepingProducer

TP = TopicPartition("switchboard.message.inbound.v1", 0)


async def test_a_reason_quoting_a_large_record_is_bounded_so_the_letter_fits() -> None:
    """pydantic's errors quote their input, here the whole record (once per error): a bot
    refusing a 700 kB record that is no event would give a letter over the topic's 2 MiB,
    which Kafka refuses; the worker then stopped on it at every start."""

    async def bot(record: Record, ctx: Context) -> None:  # as consumers.bots.handler reads
        try:
            MessageEvent.from_json(record.value)
        except ValidationError as exc:
            raise PoisonRecord(f"not a message event: {exc.errors()[:2]}") from None

    value = orjson.dumps({"text": "a" * 700_000})
    producer = KeepingProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic], handler=bot,
                            producer=producer)  # type: ignore[arg-type]
    await runtime._dispatch({TP: [SimpleNamespace(topic=TP.topic, partition=0, offset=7,
                                                  key=b"k", value=value, headers=())]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)

    [letter] = producer.published
    kept = orjson.loads(letter.value)
    assert kept["reason"].startswith("undecodable record: not a message event: [{")
    assert len(kept["reason"]) <= 501
    assert kept["payload"]["value_b64"]  # the record itself is all there
    assert record_size(letter) <= DEAD_LETTER.max_message_bytes
