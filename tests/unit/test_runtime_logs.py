"""What the worker runtime logs of a record: where it is (topic, partition, offset) and, when
its producer gave it one, its CloudEvents id (an event's id, as `tail` and its dead letters
show it)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from consumers.handling import Context, MustNotSkip, PoisonRecord, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.failure_text import traceback_without_text
from switchboard.logs import configure_logging
from switchboard.producer import PublishError
from tests.fakes import KeepingProducer

EVENT_ID = "0b9f1a52-6c1e-4a3f-9d62-2f3c0b7e5d11"
FAST = RetryPolicy(max_attempts=2, base_delay_s=0, max_delay_s=0)


def _record(headers: tuple[tuple[str, bytes | None], ...]) -> Any:
    return SimpleNamespace(topic="t", partition=3, offset=41, key=b"k", value=b"{}",
                           headers=headers)


def _logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg["event"] == event]


async def _failing(record: Record, ctx: Context) -> None:
    raise RuntimeError("the CRM is down")


async def _poison(record: Record, ctx: Context) -> None:
    raise PoisonRecord("not json")


@pytest.mark.parametrize(("handler", "event"), [
    (_failing, "handler failed, retrying"),
    (_failing, "record dead-lettered"),
    (_poison, "record dead-lettered"),
])
async def test_a_records_log_lines_name_its_event_id(
        handler: Any, event: str, caplog: pytest.LogCaptureFixture) -> None:
    # Only topic and offset were logged (the retry line not even the partition): an event
    # known by its id could not be followed into the worker's log by that id.
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=handler,
                            retry=FAST, producer=KeepingProducer())  # type: ignore[arg-type]
    record = _record((("ce_specversion", b"1.0"), ("ce_id", EVENT_ID.encode())))
    await asyncio.wait_for(runtime._handle_one(record), 5)
    [line] = _logged(caplog, event)
    assert (line["topic"], line["partition"], line["offset"]) == ("t", 3, 41)
    assert line["event_id"] == EVENT_ID


async def test_a_record_neither_handled_nor_kept_is_logged_with_its_event_id(
        caplog: pytest.LogCaptureFixture) -> None:
    async def must_not_skip(record: Record, ctx: Context) -> None:
        raise MustNotSkip("opt-out change not stored")

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"],
                            handler=must_not_skip, retry=FAST,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    r = _record((("ce_id", EVENT_ID.encode()),))
    await runtime._dispatch({TopicPartition("t", 3): [r]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    [line] = _logged(caplog, "record neither handled nor kept: stopping without committing "
                             "it; it is handled again once the worker restarts")
    assert (line["partition"], line["offset"], line["event_id"]) == (3, 41, EVENT_ID)


async def test_a_record_without_an_event_id_is_logged_without_one(
        caplog: pytest.LogCaptureFixture) -> None:
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=_poison,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    await asyncio.wait_for(runtime._handle_one(_record((("ce_id", None),))), 5)
    [line] = _logged(caplog, "record dead-lettered")
    assert "event_id" not in line and line["offset"] == 41


async def test_a_handlers_failure_is_logged_without_its_text_which_its_dead_letter_keeps(
        capsys: pytest.CaptureFixture[str]) -> None:
    # "handler failed, retrying" and "record dead-lettered" quoted the exception's text, which
    # a bot's error may fill with the message it handled: the contact's number, what was said.
    configure_logging("INFO", "json")

    async def bot(record: Record, ctx: Context) -> None:
        message = orjson.loads(record.value)
        try:
            raise KeyError(message["from"])
        except KeyError as exc:
            raise ValueError(f"{message['from']} {message['text']}") from exc

    producer = KeepingProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=bot,
                            retry=FAST, producer=producer)  # type: ignore[arg-type]
    record = Record("t", 3, 41, b"k", b'{"from": "+15551234567", "text": "said hi"}')
    await asyncio.wait_for(runtime._handle_one(record), 5)
    err = capsys.readouterr().err
    lines = {line["event"]: line for line in map(orjson.loads, err.splitlines())
             if line.get("logger") == "consumers.runtime"}
    for event in ("handler failed, retrying", "record dead-lettered"):
        line = lines[event]
        assert line["error_type"] == "ValueError"
        # Where it was raised, and what from, all the same.
        assert "in bot" in line["exception"]
        assert "builtins.KeyError (its text left out)" in line["exception"]
        assert line["exception"].endswith("builtins.ValueError (its text left out)")
    assert "5551234567" not in err and "said hi" not in err
    [letter] = producer.published
    assert orjson.loads(letter.value)["reason"] == "ValueError: +15551234567 said hi"


def test_an_exception_chain_that_loops_is_told_once_through() -> None:
    first, second = KeyError("+15551234567"), ValueError("said hi")
    first.__context__, second.__context__ = second, first
    told = traceback_without_text(first)
    assert told.count("(its text left out)") == 2
    assert told.endswith("builtins.KeyError (its text left out)")
    assert "5551234567" not in told and "said hi" not in told


async def test_a_retry_for_kafka_away_says_the_producers_words_not_the_handlers(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Why Kafka took nothing is the producer's text (no record's): said as it was.
    configure_logging("INFO", "json")
    calls = 0

    async def bot(record: Record, ctx: Context) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            contact = orjson.loads(record.value)["from"]
            raise MustNotSkip(f"opt-out of {contact} not stored") from PublishError(
                "Kafka did not acknowledge within 5s")

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=bot,
                            retry=FAST, producer=KeepingProducer())  # type: ignore[arg-type]
    record = Record("t", 3, 41, b"k", b'{"from": "+15551234567"}')
    await asyncio.wait_for(runtime._handle_one(record), 5)
    err = capsys.readouterr().err
    [line] = [line for line in map(orjson.loads, err.splitlines())
              if line.get("event") == "handler failed, retrying"]
    assert (line["kafka_away"], line["error_type"]) == (True, "MustNotSkip")
    assert line["error"] == "PublishError('Kafka did not acknowledge within 5s')"
    assert "5551234567" not in err
