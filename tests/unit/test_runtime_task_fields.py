"""A handler's own log lines (a bot's, the sender's) carry the event_id of the record it
handles, as the runtime's do; lines of tasks it starts, which may outlive the record, and
lines logged after it, do not."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from consumers import runtime as runtime_module
from consumers.bots.handler import BotHandler, RulesSource, custom_answer
from consumers.bots.optouts import OptOutList, decode_opt_out
from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from consumers.table import CompactedTable
from switchboard.events import MessageEvent
from switchboard.logs import configure_logging, get_logger
from switchboard.records import OutRecord
from switchboard.topics import OPT_OUTS

TP = TopicPartition("switchboard.message.inbound.v1", 0)
FAST = RetryPolicy(max_attempts=5, base_delay_s=0, max_delay_s=0)
bot_log = get_logger("mybot")


class LazyFlushProducer:
    """As DurableProducer: the first publish after a quiet spell starts the flusher task, which
    then runs on (here until told to stop), logging about every record's batch."""

    started = True

    def __init__(self) -> None:
        self.published: list[OutRecord] = []
        self.flusher: asyncio.Task[None] | None = None
        self.say = asyncio.Queue[str]()
        self.said = asyncio.Queue[None]()

    async def publish(self, records: list[OutRecord]) -> None:
        self.published.extend(records)
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while (event := await self.say.get()) != "stop":
            get_logger("switchboard.producer").warning(event)
            self.said.put_nowait(None)

    async def flusher_logs(self, event: str) -> None:
        self.say.put_nowait(event)
        await asyncio.wait_for(self.said.get(), 5)

    async def stop(self) -> None:
        self.say.put_nowait("stop")
        if self.flusher is not None:
            await self.flusher


def _inbound(event_id: uuid.UUID, offset: int) -> SimpleNamespace:
    event = MessageEvent.model_validate({
        "id": event_id, "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": "sms", "direction": "inbound", "from": "+4179000111", "to": "+15550000000",
        "message_id": str(uuid.uuid4()), "text": "hours?", "received_at": datetime.now(UTC),
        "raw_id": "r"})
    return SimpleNamespace(topic=TP.topic, partition=0, offset=offset, key=b"k",
                           value=event.to_json(),
                           headers=(("ce_id", str(event_id).encode()),))


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
            if line.startswith("{")]


async def _handled(runtime: WorkerRuntime, record: SimpleNamespace) -> None:
    await runtime._dispatch({TP: [record]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)


async def test_a_bots_lines_carry_the_event_id_and_a_task_it_started_does_not_keep_it(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A bot's own lines named no record: an operator had only the time to match them with
    the event. Bound with structlog's contextvars instead, the id went with every task the
    handler started: the producer's flusher, started by the first reply's publish, named that
    record in each line it logged about any other, for as long as it ran."""
    configure_logging("INFO", "json")
    first, second = uuid.uuid4(), uuid.uuid4()

    async def bot(event: MessageEvent) -> str:
        bot_log.info("looking up opening hours", contact_account=event.account)
        logging.getLogger("mybot.crm").warning("the CRM is slow")  # a library's line
        await asyncio.to_thread(logging.getLogger("mybot.db").warning, "a query in a thread")
        return "9-17"

    (tmp_path / "rules.toml").write_text("")
    handler = BotHandler("test", RulesSource(tmp_path / "rules.toml"),
                         OptOutList(CompactedTable("unused:9092", OPT_OUTS.name,
                                                   decode_opt_out)), custom_answer(bot))
    producer = LazyFlushProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler.handle, producer=producer)  # type: ignore[arg-type]
    try:
        await _handled(runtime, _inbound(first, 1))
        await producer.flusher_logs("kafka is not taking records")  # after the record

        async def while_handling(record: Record, ctx: Context) -> None:
            await producer.flusher_logs("kafka is taking records again")  # during another
            bot_log.info("the second record")

        runtime.handler = while_handling
        await _handled(runtime, _inbound(second, 2))
        bot_log.info("between records")
    finally:
        await producer.stop()

    lines = {line["event"]: line for line in _lines(capsys)}
    for event in ("looking up opening hours", "the CRM is slow", "a query in a thread"):
        assert lines[event]["event_id"] == str(first), event
    assert lines["the second record"]["event_id"] == str(second)
    for event in ("kafka is not taking records", "kafka is taking records again",
                  "between records"):
        assert "event_id" not in lines[event], event


async def test_a_handlers_line_naming_its_own_event_id_keeps_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A line that names an event_id itself (a bot's reply limit names the event it refused)
    is not overwritten."""
    configure_logging("INFO", "json")

    async def handler(record: Record, ctx: Context) -> None:
        bot_log.warning("about another event", event_id="another")

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler,
                            producer=LazyFlushProducer())  # type: ignore[arg-type]
    await _handled(runtime, _inbound(uuid.uuid4(), 1))
    [line] = [line for line in _lines(capsys) if line["event"] == "about another event"]
    assert line["event_id"] == "another"


async def test_a_summed_up_retry_line_names_no_record(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry lines held back are summed up by a timer the first one started, from its
    record's task: the sum is of many records, and names none."""
    configure_logging("INFO", "json")
    monkeypatch.setattr(runtime_module, "RETRY_LOG_WINDOW_S", 0.05)
    event_id, attempts = uuid.uuid4(), 0

    async def flaky(record: Record, ctx: Context) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise RuntimeError("the CRM is down")

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=flaky, retry=FAST,
                            producer=LazyFlushProducer())  # type: ignore[arg-type]
    await _handled(runtime, _inbound(event_id, 1))
    await asyncio.sleep(0.1)
    retries = [line for line in _lines(capsys)
               if line["event"].startswith("handler failed, retrying")]
    assert [(line.get("event_id"), line.get("more")) for line in retries] == [
        (str(event_id), None), (None, 2)]
