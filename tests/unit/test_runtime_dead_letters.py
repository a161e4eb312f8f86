"""Dead letters from the worker runtime, without a broker: each one must fit its topic, or the
record it stands for can be neither kept nor skipped."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import orjson
import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from consumers.handling import Context, PoisonRecord, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.events import MessageEvent
from switchboard.logs import configure_logging, register_secrets
from switchboard.producer_placement import record_size
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


async def test_a_reason_is_masked_as_its_log_line_is(capsys: pytest.CaptureFixture[str]) -> None:
    """A bot's failure may name what it called: httpx's errors quote the request URL, and the
    letter (kept on Kafka, printed by `replay`) carried it as it was, where the log line that
    said the same was masked."""
    configure_logging("INFO", "json")
    register_secrets(["bot-api-key-123"])
    url = "https://bot:pa55-word@crm.example/lookup?key=bot-api-key-123"

    async def bot(record: Record, ctx: Context) -> None:
        request = httpx.Request("GET", url)
        httpx.Response(500, request=request).raise_for_status()

    producer = KeepingProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic], handler=bot,
                            producer=producer,  # type: ignore[arg-type]
                            retry=RetryPolicy(max_attempts=1))
    await runtime._dispatch({TP: [SimpleNamespace(topic=TP.topic, partition=0, offset=7,
                                                  key=b"k", value=b"{}", headers=())]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)

    [letter] = producer.published
    reason = orjson.loads(letter.value)["reason"]
    assert reason.startswith("HTTPStatusError: Server error '500 Internal Server Error'")
    assert "https://bot:***@crm.example/lookup?key=***" in reason
    assert "pa55-word" not in capsys.readouterr().err


def _record(offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic=TP.topic, partition=0, offset=offset, key=b"k", value=b"{}",
                           headers=())


async def test_a_handler_raising_cancelled_error_of_its_own_is_retried_then_dead_lettered(
        ) -> None:
    """A handler awaiting something another task cancelled (a shared lookup, a task of its
    own) raises CancelledError without the worker being stopped: the record stayed in flight
    for ever, unlogged, and its partition committed nothing past it again."""
    attempts: list[int] = []

    async def bot(record: Record, ctx: Context) -> None:
        attempts.append(record.offset)
        shared = asyncio.get_running_loop().create_future()
        shared.cancel()
        await shared

    producer = KeepingProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic], handler=bot,
                            producer=producer,  # type: ignore[arg-type]
                            retry=RetryPolicy(max_attempts=2, base_delay_s=0))
    await runtime._dispatch({TP: [_record(7)]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)

    assert attempts == [7, 7]
    [letter] = producer.published
    assert orjson.loads(letter.value)["reason"] == "CancelledError: the handler was cancelled"
    assert runtime._in_flight[TP] == set() and runtime._failure is None
    assert runtime._committable()[TP].offset == 8  # the partition moves on


async def test_a_worker_cancelled_mid_record_is_not_taken_for_a_handler_failure() -> None:
    started = asyncio.Event()

    async def bot(record: Record, ctx: Context) -> None:
        started.set()
        await asyncio.Event().wait()

    producer = KeepingProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic], handler=bot,
                            producer=producer,  # type: ignore[arg-type]
                            retry=RetryPolicy(max_attempts=1, base_delay_s=0))
    await runtime._dispatch({TP: [_record(7)]})
    await asyncio.wait_for(started.wait(), 5)
    [task] = runtime._tasks
    task.cancel()  # Ctrl-C as asyncio.run ends: the task is cancelled, not the record failed
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()
    assert producer.published == [] and runtime._in_flight[TP] == {7}
