"""The bot handler without a broker: compliance, opt-outs, auto-reply cooldown, no loops."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from consumers.bots import handler as handler_module
from consumers.bots import limits as limits_module
from consumers.bots.handler import (
    AutoReply,
    BotHandler,
    RulesSource,
    custom_answer,
    keywords_answer,
)
from consumers.bots.optouts import OptOutList, decode_opt_out
from consumers.bots.sdk import Reply
from consumers.bots.templates import ECHO_CHARS
from consumers.handling import Context, MustNotSkip, PoisonRecord, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from consumers.table import CompactedTable
from switchboard.events import MessageEvent
from switchboard.producer import PublishError
from switchboard.records import (
    COMMAND_TYPE,
    OPT_OUT_CHANGE_TYPE,
    OutRecord,
    ce_type_of,
    conversation_key,
)
from switchboard.topics import OPT_OUTS, OUTBOUND
from tests.fakes import KeepingProducer
from tests.unit.fakes import FakeContext, ModuleWith

RULES = """
[accounts.acme]
own_numbers = ["+15550000000"]
auto_reply = { text = "Thanks {from}", cooldown_s = 3600 }
"""


def record(text: str | None, sender: str = "+4179000111", message_id: str | None = None,
           postback: str | None = None) -> Record:
    event = MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": "sms", "direction": "inbound", "from": sender, "to": "+15550000000",
        "message_id": message_id or str(uuid.uuid4()), "text": text, "postback": postback,
        "received_at": datetime.now(UTC), "raw_id": "r"})
    return Record("t", 0, 0, b"k", event.to_json())


def handler(tmp_path: Any, answer: Any, rules: str = RULES) -> BotHandler:
    path = tmp_path / "rules.toml"
    path.write_text(rules)
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    return BotHandler("test", RulesSource(path), OptOutList(table), answer)


async def test_an_invalid_event_is_refused_for_its_problems_not_its_text(tmp_path: Any
                                                                         ) -> None:
    """The reason of a poison record is logged and kept: pydantic's errors would quote the
    whole event, the contact's words and number with it."""
    event = orjson.loads(record("my secret words", sender="+4179000999").value)
    del event["received_at"]
    poisoned = Record("t", 0, 0, b"k", orjson.dumps(event))
    with pytest.raises(PoisonRecord) as raised:
        await handler(tmp_path, None).handle(poisoned, FakeContext())
    reason = str(raised.value)
    assert "received_at: Field required" in reason
    assert "my secret words" not in reason and "+4179000999" not in reason


def commands(ctx: FakeContext) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in ctx.published
            if r.topic == OUTBOUND.name and ce_type_of(r.headers) == COMMAND_TYPE]


async def test_auto_reply_once_per_contact_per_window_and_never_to_own_numbers(tmp_path: Any
                                                                              ) -> None:
    bot = handler(tmp_path, AutoReply())
    ctx = FakeContext()
    for text in ("hi", "hello again", "anyone?"):
        await bot.handle(record(text), ctx)
    await bot.handle(record("hi", sender="+4179000222"), ctx)
    await bot.handle(record("hi", sender="+15550000000"), ctx)  # ourselves: no loop
    assert [c["text"] for c in commands(ctx)] == ["Thanks +4179000111", "Thanks +4179000222"]


@pytest.mark.parametrize(("text", "replies"), [
    ("{keyword} via {provider} on {channel}: {rest}", ["hi via infobip on sms: there"]),
    ("{postback}", []),  # renders empty: nothing to say, not an invalid command
])
async def test_an_auto_reply_template_has_every_documented_field(tmp_path: Any, text: str,
                                                                  replies: list[str]) -> None:
    rules = f'[accounts.acme]\nauto_reply = {{ text = "{text}", cooldown_s = 3600 }}\n'
    bot = handler(tmp_path, AutoReply(), rules)
    ctx = FakeContext()
    await bot.handle(record("hi there"), ctx)
    assert [c["text"] for c in commands(ctx)] == replies


async def test_what_the_contact_wrote_goes_into_replies_and_opt_outs_one_sms_long(
        tmp_path: Any) -> None:
    """{text} and the STOP word as written were copied whole: a long message came back as
    dozens of SMS parts, and a "STOP!!!..." of a megabyte was the opt-out record's source."""
    rules = '[accounts.acme]\nauto_reply = { text = "Got: {text}", cooldown_s = 3600 }\n'
    bot = handler(tmp_path, AutoReply(), rules)
    ctx = FakeContext()
    await bot.handle(record("x" * 5000), ctx)
    [reply] = commands(ctx)
    assert reply["text"] == "Got: " + "x" * (ECHO_CHARS - 3) + "..."
    stop = FakeContext()
    await bot.handle(record("STOP" + "!" * 1_000_000), stop)
    [change] = [decode_opt_out(r.value) for r in stop.published if r.topic == OPT_OUTS.name]
    assert change.opted_out and change.source == "keyword:STOP" + "!" * (ECHO_CHARS - 7) + "..."


class FailingOnceContext(FakeContext):
    """Kafka does not acknowledge the first publish: the runtime retries the record."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def publish(self, records: Any) -> None:
        if not self.failed:
            self.failed = True
            raise PublishError("Kafka did not acknowledge within 5.0s")
        await super().publish(records)


async def test_an_auto_reply_whose_publish_failed_is_made_again_when_retried(tmp_path: Any
                                                                            ) -> None:
    bot = handler(tmp_path, AutoReply())
    ctx = FailingOnceContext()
    first = record("hi")
    with pytest.raises(PublishError):
        await bot.handle(first, ctx)
    await bot.handle(first, ctx)  # the retry: the same reply (same id), not silence
    await bot.handle(record("hello again"), ctx)  # the cooldown still holds for the rest
    assert [c["text"] for c in commands(ctx)] == ["Thanks +4179000111"]


async def test_stop_publishes_opt_out_and_one_confirmation_then_silence(tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer)
    ctx = FakeContext()
    stop = record("STOP")
    await bot.handle(stop, ctx)
    opt_outs = [decode_opt_out(r.value) for r in ctx.published if r.topic == OPT_OUTS.name]
    assert [(o.contact, o.opted_out) for o in opt_outs] == [("+4179000111", True)]
    # The change also goes on the outbound topic, in the contact's conversation, before the
    # confirmation: the sender meets it ahead of any later command to that contact.
    outbound = [r for r in ctx.published if r.topic == OUTBOUND.name]
    assert [ce_type_of(r.headers) for r in outbound] == [OPT_OUT_CHANGE_TYPE, COMMAND_TYPE]
    assert outbound[0].key == outbound[1].key == conversation_key("infobip", "acme",
                                                                  "+4179000111")
    assert decode_opt_out(outbound[0].value) == opt_outs[0]
    [confirmation] = commands(ctx)
    assert confirmation["kind"] == "opt-out-confirmation"
    assert bot.opt_outs.is_opted_out("acme", "+4179000111")

    again = FakeContext()
    await bot.handle(stop, again)  # redelivered by Kafka: the same command id again
    assert commands(again)[0]["id"] == confirmation["id"]
    quiet = FakeContext()
    await bot.handle(record("price"), quiet)
    assert commands(quiet) == []


async def test_a_button_with_the_payload_stop_opts_out_and_is_confirmed(tmp_path: Any
                                                                        ) -> None:
    bot = handler(tmp_path, keywords_answer)
    ctx = FakeContext()
    await bot.handle(record("Abmelden", postback="STOP"), ctx)
    [change] = [decode_opt_out(r.value) for r in ctx.published if r.topic == OPT_OUTS.name]
    assert change.opted_out and change.source == "postback:STOP"
    assert [c["kind"] for c in commands(ctx)] == ["opt-out-confirmation"]
    assert bot.opt_outs.is_opted_out("acme", "+4179000111")


async def test_help_is_answered_after_stop_as_carriers_require(tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer)
    await bot.handle(record("STOP"), FakeContext())
    ctx = FakeContext()
    await bot.handle(record("help"), ctx)
    [answer] = commands(ctx)
    # The kind is what lets the sender deliver it despite the opt-out.
    assert (answer["kind"], answer["to"]) == ("help", "+4179000111")
    info = FakeContext()  # INFO too, as carriers read it: it got nothing
    await bot.handle(record("INFO"), info)
    assert [(c["kind"], c["text"]) for c in commands(info)] == [("help", answer["text"])]


async def test_metrics_count_replies_opt_out_changes_and_silenced_messages(tmp_path: Any
                                                                          ) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"worker": "test", "account": "acme",
                                                **labels}) or 0.0

    before = (sample("switchboard_bot_replies_total", purpose="help"),
              sample("switchboard_bot_opt_out_changes_total", change="opt_out",
                     source="keyword"),
              sample("switchboard_bot_opted_out_messages_total"))
    bot = handler(tmp_path, keywords_answer)
    for text in ("HELP", "STOP", "anything"):
        await bot.handle(record(text), FakeContext())
    after = (sample("switchboard_bot_replies_total", purpose="help"),
             sample("switchboard_bot_opt_out_changes_total", change="opt_out",
                    source="keyword"),
             sample("switchboard_bot_opted_out_messages_total"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


class RefusingContext(FakeContext):
    async def publish(self, records: Any) -> None:
        raise PublishError("Kafka did not acknowledge within 5.0s")


async def test_an_opt_out_that_cannot_be_stored_is_never_skipped(tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer)
    with pytest.raises(MustNotSkip):  # the runtime stops rather than dead-letter it
        await bot.handle(record("STOP"), RefusingContext())
    assert not bot.opt_outs.is_opted_out("acme", "+4179000111")  # not remembered either
    with pytest.raises(PublishError):  # an ordinary reply may be dead-lettered as usual
        await bot.handle(record("HELP"), RefusingContext())


class SlowProducer(KeepingProducer):
    """Kafka acknowledges, but later than the bot's handler timeout."""

    async def publish(self, records: list[OutRecord]) -> None:
        await asyncio.sleep(0.3)
        await super().publish(records)


async def test_a_publish_slower_than_the_bot_timeout_does_not_dead_letter_an_opt_out(
        tmp_path: Any) -> None:
    """The producer bounds a publish itself; counted against SWITCHBOARD_BOT_TIMEOUT_S, a slow
    acknowledgement ended the STOP as a TimeoutError, retried, then dead-lettered."""
    bot = handler(tmp_path, keywords_answer)
    producer = SlowProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=bot.handle,
                            producer=producer, handler_timeout_s=0.05,  # type: ignore[arg-type]
                            retry=RetryPolicy(max_attempts=1))
    stop = record("STOP")
    await runtime._dispatch({TopicPartition("t", 0): [stop]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    # Stored (and confirmed) on the first attempt: no dead letter, nothing failed.
    assert {r.topic for r in producer.published} == {OPT_OUTS.name, OUTBOUND.name}
    assert bot.opt_outs.is_opted_out("acme", "+4179000111")


async def test_a_publish_from_a_task_the_handler_left_behind_still_publishes() -> None:
    # The task copies the handler's time limit; once the handler's block has ended, pausing
    # that limit raised RuntimeError and the record was never published.
    producer = KeepingProducer()
    later: list[asyncio.Task[None]] = []

    async def starts_a_task(record: Record, ctx: Context) -> None:
        later.append(asyncio.create_task(slow_publish(ctx)))

    async def slow_publish(ctx: Context) -> None:
        await asyncio.sleep(0.1)
        await ctx.publish([OutRecord("t", b"v", b"k")])

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"],
                            handler=starts_a_task, producer=producer,  # type: ignore[arg-type]
                            handler_timeout_s=5, retry=RetryPolicy(max_attempts=1))
    await runtime._dispatch({TopicPartition("t", 0): [record("hi")]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    await asyncio.wait_for(later[0], 5)
    assert [r.value for r in producer.published] == [b"v"]


async def test_a_message_redelivered_after_a_rules_reload_keeps_its_reply_id(
        tmp_path: Any) -> None:
    # Reply ids came from the matching rule's position: a reload that added a rule before it
    # (or made the fallback's message match a rule) gave a redelivered message a new id, and
    # the sender sent the contact a second reply.
    bot = handler(tmp_path, keywords_answer, '[accounts.acme]\nfallback = "Reply HELP."\n')
    price = record("price?")
    first = FakeContext()
    await bot.handle(price, first)
    (tmp_path / "rules.toml").write_text(
        '[accounts.acme]\nfallback = "Reply HELP."\n'
        '[[accounts.acme.rules]]\nkeyword = "price"\nreply = "From 10 EUR"\n')
    bot.rules.request_reload()
    again = FakeContext()
    await bot.handle(price, again)  # redelivered (its offset was not committed)
    assert [c["text"] for c in commands(first) + commands(again)] == ["Reply HELP.",
                                                                      "From 10 EUR"]
    assert commands(first)[0]["id"] == commands(again)[0]["id"]  # the sender sends it once


def opt_out_changes(ctx: FakeContext) -> list[bool]:
    return [decode_opt_out(r.value).opted_out for r in ctx.published if r.topic == OPT_OUTS.name]


def bird_opt_out_report(occurred_at: datetime) -> Record:
    event = MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.status", "provider": "bird", "account": "acme",
        "channel": "sms", "direction": "outbound", "to": "+4179000111", "status": "undelivered",
        "error": {"code": "103", "description": "contact opted out", "permanent": True},
        "message_id": str(uuid.uuid4()), "occurred_at": occurred_at,
        "received_at": datetime.now(UTC), "raw_id": "r"})
    return Record("t", 0, 0, b"k", event.to_json())


async def test_an_older_change_handled_late_does_not_undo_a_newer_one(tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer)
    stop = record("STOP")
    before_start = datetime.now(UTC)
    await bot.handle(stop, FakeContext())
    await bot.handle(record("START"), FakeContext())
    assert not bot.opt_outs.is_opted_out("acme", "+4179000111")

    for late in (stop, bird_opt_out_report(before_start)):  # redelivered; reported late
        ctx = FakeContext()
        await bot.handle(late, ctx)
        assert opt_out_changes(ctx) == []
    assert not bot.opt_outs.is_opted_out("acme", "+4179000111")

    ctx = FakeContext()  # a provider opt-out that happened after the START still counts
    await bot.handle(bird_opt_out_report(datetime.now(UTC)), ctx)
    assert opt_out_changes(ctx) == [True]
    assert bot.opt_outs.is_opted_out("acme", "+4179000111")


FALLBACK = """
[accounts.acme]
fallback = "Sorry, we did not understand. Reply HELP."
"""


def limited(worker: str = "test") -> float:
    return REGISTRY.get_sample_value("switchboard_bot_replies_limited_total",
                                     {"worker": worker, "account": "acme"}) or 0.0


async def test_automated_replies_to_one_contact_stop_at_the_limit_compliance_does_not(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Another automated sender not in own_numbers and our fallback would answer each other
    without end, each SMS paid for."""
    bot = handler(tmp_path, keywords_answer, FALLBACK)
    before = limited()
    ctx = FakeContext()
    for n in range(12):
        await bot.handle(record(f"I'm driving, I'll get back to you ({n})"), ctx)
    assert len(commands(ctx)) == 10  # the default: 10 per contact per 10 minutes
    assert limited() - before == 2
    assert caplog.text.count("reply limit reached") == 1  # once per window, not per message
    assert "I'm driving" not in caplog.text
    assert "+4179000111" not in caplog.text and "+417***11" in caplog.text  # no phone numbers

    other = FakeContext()
    await bot.handle(record("hello", sender="+4179000222"), other)  # per contact
    await bot.handle(record("HELP"), other)  # compliance has a limit of its own
    await bot.handle(record("STOP"), other)
    assert [c["kind"] for c in commands(other)] == ["message", "help", "opt-out-confirmation"]


async def test_a_message_answered_before_the_limit_gets_the_same_reply_again(tmp_path: Any
                                                                            ) -> None:
    bot = handler(tmp_path, keywords_answer, FALLBACK)
    ctx = FakeContext()
    messages = [record(f"auto-reply {n}") for n in range(10)]
    for message in messages:
        await bot.handle(message, ctx)
    again = FakeContext()
    await bot.handle(messages[0], again)  # redelivered by Kafka: not refused, not counted
    await bot.handle(record("one more"), again)  # over the limit
    assert [c["id"] for c in commands(again)] == [commands(ctx)[0]["id"]]


async def test_a_reply_at_the_limit_whose_publish_failed_is_made_again_when_retried(
        tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer,
                  FALLBACK + "reply_limit = 1\nreply_limit_window_s = 60\n")
    ctx = FailingOnceContext()
    first = record("hi")
    with pytest.raises(PublishError):
        await bot.handle(first, ctx)
    await bot.handle(first, ctx)  # the retry: its reply, though the limit is reached
    await bot.handle(record("hi again"), ctx)
    assert [c["text"] for c in commands(ctx)] == ["Sorry, we did not understand. Reply HELP."]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The bots' monotonic clock (cooldowns and reply limits), at clock["now"]: windows pass
    without waiting."""
    now = {"now": 1000.0}
    for module in (handler_module, limits_module):
        monkeypatch.setattr(module, "time", ModuleWith(time, monotonic=lambda: now["now"]))
    return now


def limited_auto_reply(tmp_path: Any, cooldown_s: float, reply_limit: int,
                       window_s: float) -> BotHandler:
    """An auto-reply bot whose account has these cooldown and reply limit settings."""
    return handler(tmp_path, AutoReply(), f"""
[accounts.acme]
auto_reply = {{ text = "Thanks", cooldown_s = {cooldown_s} }}
reply_limit = {reply_limit}
reply_limit_window_s = {window_s}
""")


async def _answered_at(bot: BotHandler, clock: dict[str, float], times: tuple[float, ...],
                       text: str = "at {at}") -> list[float]:
    """The times, of those given, at which a message from the contact got a reply."""
    ctx = FakeContext()
    answered = []
    for at in times:
        clock["now"] = at
        message = record(text.format(at=at))
        await bot.handle(message, ctx)
        if commands(ctx)[-1]["metadata"]["in_reply_to_event"] == \
                str(MessageEvent.from_json(message.value).id):
            answered.append(at)
    return answered


async def test_the_reply_limit_is_per_account_and_its_window_slides(
        tmp_path: Any, clock: dict[str, float]) -> None:
    bot = limited_auto_reply(tmp_path, cooldown_s=0.1, reply_limit=2, window_s=60)
    answered = await _answered_at(bot, clock, (1000, 1002, 1004, 1030, 1061, 1061.5, 1062.5))
    # At 1061 the reply of 1000 has left the window, at 1062.5 the one of 1002 too.
    assert answered == [1000, 1002, 1061, 1062.5]


async def test_an_auto_reply_the_reply_limit_held_back_starts_no_cooldown(
        tmp_path: Any, clock: dict[str, float]) -> None:
    """The cooldown started for a reply the limit held back (never sent): a contact who wrote
    while held got no auto-reply at the next allowed time either, for a whole cooldown."""
    bot = limited_auto_reply(tmp_path, cooldown_s=200, reply_limit=1, window_s=300)
    # replied; held by the limit (cooldown over); limit free
    answered = await _answered_at(bot, clock, (1000, 1250, 1310))
    assert answered == [1000, 1310]


@pytest.mark.parametrize(("output", "texts"), [
    ("", []), ("  \n", []), (["", "Hi", " "], ["Hi"]), ([Reply(), Reply(text="Hi")], ["Hi"]),
])
async def test_an_empty_or_blank_reply_of_a_custom_bot_is_no_reply(
        tmp_path: Any, output: Any, texts: list[str]) -> None:
    """"" raised a command without text, so the message was retried, then dead-lettered with
    the bot's other replies; "  " was sent, a blank SMS paid for."""
    async def bot(event: MessageEvent) -> Any:
        return output

    ctx = FakeContext()
    await handler(tmp_path, custom_answer(bot)).handle(record("hello"), ctx)
    assert [command["text"] for command in commands(ctx)] == texts


def compliance_limited() -> float:
    return REGISTRY.get_sample_value("switchboard_bot_compliance_replies_limited_total",
                                     {"worker": "test", "account": "acme"}) or 0.0


def kinds(ctx: FakeContext) -> list[str]:
    return [command["kind"] for command in commands(ctx)]


async def test_an_automated_help_loop_gets_the_compliance_reply_limit_and_no_more(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """An automated sender whose text begins "HELP:" (our own help text echoed back, another
    company's keyword bot) got our help text for each message, without end, each SMS paid."""
    bot = handler(tmp_path, keywords_answer, FALLBACK)
    before = compliance_limited(), limited()
    ctx = FakeContext()
    for n in range(20):
        await bot.handle(record(f"HELP: Acme alerts, msg {n}. Reply STOP to opt out."), ctx)
    assert kinds(ctx) == ["help"] * 5  # the default: 5 per contact per 10 minutes
    assert compliance_limited() - before[0] == 15
    assert caplog.text.count("compliance reply limit reached") == 1  # once per window
    assert "Acme alerts" not in caplog.text
    assert "+4179000111" not in caplog.text and "+417***11" in caplog.text  # no phone numbers

    other = FakeContext()  # per contact, and apart from the automated replies' limit
    await bot.handle(record("HELP", sender="+4179000222"), other)
    await bot.handle(record("what?"), other)
    assert kinds(other) == ["help", "message"]
    assert limited() == before[1]


async def test_a_change_of_state_is_confirmed_past_the_limit_its_repeats_are_not(
        tmp_path: Any) -> None:
    """The law and carriers want each opt-out and opt-in confirmed: this limit holds back only
    the replies that change nothing (opt-ins have one of their own, in which a contact's HELPs
    do not count: test_bot_confirmation_loop.py). Each change is published whatever the limit
    says."""
    bot = handler(tmp_path, keywords_answer)
    for n in range(10):
        await bot.handle(record(f"HELP {n}"), FakeContext())
    steps = []
    for text in ("STOP", "STOP please", "START", "START", "UNSTOP", "STOP", "HELP"):
        ctx = FakeContext()
        await bot.handle(record(text), ctx)
        steps.append((text, kinds(ctx), opt_out_changes(ctx)))
    assert steps == [
        ("STOP", ["opt-out-confirmation"], [True]),  # the change: confirmed
        ("STOP please", [], [True]),  # already out: no reply, the record still published
        ("START", ["message"], [False]),  # back in: confirmed
        ("START", [], [False]),
        ("UNSTOP", [], [False]),
        ("STOP", ["opt-out-confirmation"], [True]),
        ("HELP", [], []),
    ]
    assert bot.opt_outs.is_opted_out("acme", "+4179000111")


async def test_a_button_stop_from_a_contact_already_out_counts_against_the_limit(
        tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer,
                  "[accounts.acme]\ncompliance_reply_limit = 1\n")
    await bot.handle(record("STOP"), FakeContext())  # a change: not counted
    first, second = FakeContext(), FakeContext()
    await bot.handle(record("Abmelden", postback="STOP"), first)
    await bot.handle(record("Abmelden", postback="STOP"), second)
    assert (kinds(first), opt_out_changes(first)) == (["opt-out-confirmation"], [True])
    assert (kinds(second), opt_out_changes(second)) == ([], [True])


async def test_a_compliance_reply_made_before_the_limit_is_made_again_when_redelivered(
        tmp_path: Any) -> None:
    """As for automated replies: the same reply, with the same command id (the sender sends
    it once), neither counted again nor refused, the confirmation of a change too."""
    bot = handler(tmp_path, keywords_answer, "[accounts.acme]\ncompliance_reply_limit = 2\n")
    before = compliance_limited()
    help_, stop = record("HELP"), record("STOP")
    first = FakeContext()
    for message in (help_, record("HELP"), stop):
        await bot.handle(message, first)
    again = FakeContext()
    for message in (help_, stop, help_, record("HELP")):  # the last one is over the limit
        await bot.handle(message, again)
    assert kinds(again) == ["help", "opt-out-confirmation", "help"]
    assert [c["id"] for c in commands(again)] == [commands(first)[n]["id"] for n in (0, 2, 0)]
    assert compliance_limited() - before == 1


async def test_a_confirmation_whose_publish_failed_past_the_limit_is_made_when_retried(
        tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer, "[accounts.acme]\ncompliance_reply_limit = 1\n")
    await bot.handle(record("HELP"), FakeContext())
    ctx = FailingOnceContext()
    stop = record("STOP")
    with pytest.raises(MustNotSkip):
        await bot.handle(stop, ctx)
    await bot.handle(stop, ctx)  # the retry: still the change it was, still confirmed
    assert (kinds(ctx), opt_out_changes(ctx)) == (["opt-out-confirmation"], [True])


async def test_the_compliance_reply_limit_window_slides(
        tmp_path: Any, clock: dict[str, float]) -> None:
    bot = handler(tmp_path, keywords_answer,
                  "[accounts.acme]\ncompliance_reply_limit = 2\nreply_limit_window_s = 60\n")
    answered = await _answered_at(bot, clock, (1000, 1002, 1004, 1030, 1061, 1061.5, 1062.5),
                                  "HELP at {at}")
    assert answered == [1000, 1002, 1061, 1062.5]
