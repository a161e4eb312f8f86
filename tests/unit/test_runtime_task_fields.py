"""A handler's own log lines (a bot's, the sender's), also those of tasks it starts, carry the
event_id of the record it handles while it handles it, as the runtime's do; lines logged after
it do not, nor those of what serves every record (the producer's flusher, a retry window's
sum), even when the record started it."""

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
from aiokafka.errors import KafkaConnectionError
from aiokafka.producer.message_accumulator import BatchBuilder

from consumers import runtime as runtime_module
from consumers.bots.handler import BotHandler, RulesSource, custom_answer
from consumers.bots.optouts import OptOutList, decode_opt_out
from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from consumers.table import CompactedTable
from switchboard import producer as producer_module
from switchboard.events import MessageEvent
from switchboard.logs import configure_logging, get_logger
from switchboard.producer import MAX_BATCH_BYTES, DurableProducer, PublishError
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


async def _retry_lines_until_summed(capsys: pytest.CaptureFixture[str]
                                    ) -> list[dict[str, Any]]:
    """The retry lines logged, once the window's sum is among them (or after 5 s): its timer
    fires when the loop gets to it, later than the window on a loaded machine."""
    retries: list[dict[str, Any]] = []
    for _ in range(100):
        retries += [line for line in _lines(capsys)
                    if line["event"].startswith("handler failed, retrying")]
        if any("more" in line for line in retries):
            break
        await asyncio.sleep(0.05)
    return retries


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
    # Wide enough that the second failure, right after the first (FAST: no delay), falls in it
    # on a loaded machine too (at 0.05 s it did not, now and then); the sleep outlasts it.
    monkeypatch.setattr(runtime_module, "RETRY_LOG_WINDOW_S", 0.5)
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
    retries = await _retry_lines_until_summed(capsys)
    assert [(line.get("event_id"), line.get("more")) for line in retries] == [
        (str(event_id), None), (None, 2)]


async def test_lines_of_tasks_a_handler_starts_carry_the_event_id_while_it_is_handled(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The sender runs each provider call in a task of its own, and a handler may start tasks
    of its own: their lines named no record, though they were about it. They do while the
    record is handled; a task that outlives it names it no more."""
    configure_logging("INFO", "json")
    event_id = uuid.uuid4()
    go_on = asyncio.Event()
    outliving: list[asyncio.Task[None]] = []

    async def child(event: str) -> None:
        bot_log.info(event)
        await asyncio.to_thread(logging.getLogger("mybot.db").warning, f"{event}, in a thread")

    async def lingering() -> None:
        await go_on.wait()
        bot_log.info("after the record")

    async def handler(record: Record, ctx: Context) -> None:
        await asyncio.create_task(child("a task of the handler"))
        await asyncio.ensure_future(child("a call in a task"))  # as the sender's provider call
        outliving.append(asyncio.create_task(lingering()))

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler,
                            producer=LazyFlushProducer())  # type: ignore[arg-type]
    await _handled(runtime, _inbound(event_id, 1))
    go_on.set()
    await asyncio.wait_for(outliving[0], 5)

    lines = {line["event"]: line for line in _lines(capsys)}
    for event in ("a task of the handler", "a task of the handler, in a thread",
                  "a call in a task", "a call in a task, in a thread"):
        assert lines[event]["event_id"] == str(event_id), event
    assert "event_id" not in lines["after the record"]


class RefusingKafka:
    """aiokafka's producer with Kafka refusing every batch: the flusher logs the failure."""

    def __init__(self, **options: Any) -> None:
        self.client = SimpleNamespace(
            cluster=SimpleNamespace(partitions_for_topic=lambda topic: {0}),
            add_topic=lambda topic: None)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def create_batch(self) -> Any:
        return BatchBuilder(MAX_BATCH_BYTES, 0)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        raise KafkaConnectionError("no broker")


class SilentKafka(RefusingKafka):
    """Kafka never answering: the timer the first caller's publish started gives up."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.client.cluster.leader_for_partition = lambda partition: 0  # a leader, silent

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        return asyncio.get_running_loop().create_future()  # never done


@pytest.mark.parametrize("kafka", [RefusingKafka, SilentKafka])
async def test_the_producers_flusher_started_by_a_handler_names_no_record(
        kafka: type[RefusingKafka], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer's flusher, started by the first publish after a quiet spell, sends what
    every handler publishes, and the timer of a group, started by its first caller, gives up
    for all its callers: what they log, even while the record that started them is handled,
    is about all of them."""
    configure_logging("INFO", "json")

    monkeypatch.setattr(producer_module, "AIOKafkaProducer", kafka)
    producer = DurableProducer("unused:9092", timeout_s=1)
    await producer.start()

    async def handler(record: Record, ctx: Context) -> None:
        with pytest.raises(PublishError):
            await ctx.publish([OutRecord("t", b"reply", b"k")])
        bot_log.info("the publish failed")

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, producer=producer)
    try:
        await _handled(runtime, _inbound(uuid.uuid4(), 1))
    finally:
        await producer.stop()
    lines = {line["event"]: line for line in _lines(capsys)}
    assert "event_id" in lines["the publish failed"]
    assert "event_id" not in lines["kafka is not taking records"]


async def test_a_retry_window_ending_while_its_first_record_is_handled_names_no_record(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The window's timer is started by its first retry line, while that line's record is
    handled, which an outage may keep going past the window's end: the sum is of many
    records, and names none."""
    configure_logging("INFO", "json")
    monkeypatch.setattr(runtime_module, "RETRY_LOG_WINDOW_S", 0.5)  # see the test above
    event_id, attempts = uuid.uuid4(), 0

    async def flaky(record: Record, ctx: Context) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("the CRM is down")
        await asyncio.sleep(1.5)  # the window ends meanwhile

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=flaky, retry=FAST,
                            producer=LazyFlushProducer())  # type: ignore[arg-type]
    await _handled(runtime, _inbound(event_id, 1))
    retries = [line for line in _lines(capsys)
               if line["event"].startswith("handler failed, retrying")]
    assert [(line.get("event_id"), line.get("more")) for line in retries] == [
        (str(event_id), None), (None, 1)]
