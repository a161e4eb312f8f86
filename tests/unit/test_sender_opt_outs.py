"""The sender's decisions: opt-out changes met on the outbound topic in order with the
commands, a result keyed like its command for commands refused or invalid, and a result for
whatever text the provider answered with.

No broker: the records are handed to the handler as the runtime would, in partition order,
and the provider is an in-process httpx transport (a unit test of the sender's logic).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from consumers.bots.optouts import (
    OptOutList,
    OptOutState,
    decode_opt_out,
    opt_out_key,
    opt_out_records,
)
from consumers.handling import GiveBack, PoisonRecord, Record
from consumers.ledger import LedgerEntry, decode_ledger, ledger_stands
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.accounts import parse_accounts
from switchboard.commands import CommandKind, OutboundCommand
from switchboard.logs import configure_logging
from switchboard.producer import PublishError
from switchboard.records import OPT_OUT_CHANGE_TYPE, OutRecord, command_record
from switchboard.topics import OPT_OUTS, OUTBOUND_RESULTS, OUTBOUND_SENT
from tests.unit.fakes import FakeContext
from tests.unit.senders import (
    ACCOUNTS,
    CONTACT,
    accepting_sender,
    command,
    consumed,
    results,
    sends_counted,
)
from tests.unit.test_compacted_table import FakeRecord

TELEGRAM_CHAT = "1033247360"  # a Telegram chat id, as events spell it: no phone number


def read(record: OutRecord) -> FakeRecord:
    """`record` as the opt-out table's follower reads it, from partition 0."""
    return FakeRecord(record.key, record.value)


@pytest.fixture
def provider_calls() -> list[httpx.Request]:
    return []


@pytest.fixture
async def sender(provider_calls: list[httpx.Request]) -> AsyncIterator[Sender]:
    async with accepting_sender(ACCOUNTS, provider_calls) as sender:
        yield sender


async def opted_out(sender: Sender) -> tuple[FakeContext, OutRecord]:
    """A context in which the sender has met CONTACT's STOP, and that change's record."""
    ctx = FakeContext()
    _, stop = opt_out_records("infobip", "acme", CONTACT, True, "keyword:STOP")
    await sender.handle(consumed(stop), ctx)
    return ctx, stop


async def test_a_command_after_an_opt_out_change_is_refused_until_opt_in(
        sender: Sender, provider_calls: list[httpx.Request]) -> None:
    ctx = FakeContext()
    _, stop = opt_out_records("infobip", "acme", CONTACT, True, "keyword:STOP")
    await sender.handle(consumed(stop), ctx)
    assert ctx.published == []  # a change is applied, not answered

    await sender.handle(consumed(command()), ctx)
    [refused] = results(ctx)
    assert (refused["status"], refused["error"]["code"]) == ("failed", "opted_out")
    assert provider_calls == []

    _, start = opt_out_records("infobip", "acme", CONTACT, False, "keyword:START")
    await sender.handle(consumed(start), ctx)
    await sender.handle(consumed(command()), ctx)
    [accepted] = results(ctx)
    assert accepted["status"] == "accepted" and len(provider_calls) == 1


@pytest.mark.parametrize("spelling", ["4179000111", "004179000111", "+41 79 000 111",
                                      "+41-79-000-111"])
async def test_an_opted_out_contact_is_refused_however_the_number_is_written(
        sender: Sender, provider_calls: list[httpx.Request], spelling: str) -> None:
    ctx, stop = await opted_out(sender)
    other = command(to=spelling)
    assert other.key == stop.key  # the same conversation, so in order behind the STOP
    await sender.handle(consumed(other), ctx)
    [refused] = results(ctx)
    assert refused["error"]["code"] == "opted_out" and provider_calls == []


def telegram_command(channel: str | None) -> OutRecord:
    return command_record(OutboundCommand(id=str(uuid.uuid4()), account="tg", to=TELEGRAM_CHAT,
                                          channel=channel, text="Sale today",
                                          created_at=datetime.now(UTC)), "infobip")


async def handled_with_re_keyed(sender: Sender, record: OutRecord, ctx: FakeContext) -> None:
    """Handle a command, and the copy the sender puts back under its conversation's key."""
    await sender.handle(consumed(record), ctx)
    copies = [r for r in ctx.published if r.topic == record.topic]
    for copy in copies:
        ctx.published.remove(copy)
        await sender.handle(consumed(copy), ctx)


@pytest.mark.parametrize("channel", ["telegram", "TELEGRAM", None])  # None: the account's
async def test_an_opted_out_telegram_chat_is_refused_under_the_id_events_gave(
        sender: Sender, provider_calls: list[httpx.Request], channel: str | None) -> None:
    # The bots record the STOP under the inbound event's `from`: the chat id, without "+".
    ctx = FakeContext()
    _, stop = opt_out_records("infobip", "tg", TELEGRAM_CHAT, True, "keyword:STOP")
    await sender.handle(consumed(stop), ctx)
    await handled_with_re_keyed(sender, telegram_command(channel), ctx)
    [refused] = results(ctx)
    assert (refused["error"]["code"], refused["to"]) == ("opted_out", TELEGRAM_CHAT)
    assert provider_calls == []


@pytest.mark.parametrize("channel", ["telegram", None])
async def test_a_telegram_chat_id_is_sent_and_echoed_as_given(
        sender: Sender, provider_calls: list[httpx.Request], channel: str | None) -> None:
    ctx = FakeContext()
    await handled_with_re_keyed(sender, telegram_command(channel), ctx)
    [accepted] = results(ctx)
    assert (accepted["status"], accepted["to"]) == ("accepted", TELEGRAM_CHAT)
    [call] = provider_calls
    assert orjson.loads(call.content)["messages"][0]["destinations"] == [{"to": TELEGRAM_CHAT}]


@pytest.mark.parametrize("kind", [CommandKind.OPT_OUT_CONFIRMATION, CommandKind.HELP])
async def test_compliance_answers_reach_an_opted_out_contact(
        sender: Sender, provider_calls: list[httpx.Request], kind: CommandKind) -> None:
    ctx, _ = await opted_out(sender)
    await sender.handle(consumed(command(kind=kind)), ctx)
    [result] = results(ctx)
    assert result["status"] == "accepted" and len(provider_calls) == 1


async def test_an_unreadable_opt_out_change_is_a_poison_record(sender: Sender) -> None:
    _, change = opt_out_records("infobip", "acme", CONTACT, True, "keyword:STOP")
    broken = OutRecord(change.topic, b"{not json", change.key, change.headers)
    assert dict(broken.headers)["ce_type"] == OPT_OUT_CHANGE_TYPE.encode()
    with pytest.raises(PoisonRecord):
        await sender.handle(consumed(broken), FakeContext())


async def test_an_unreadable_opt_out_change_s_reason_does_not_quote_the_contact(
        sender: Sender) -> None:
    # Cut short after the contact: pydantic's own message quotes the input, the number too.
    _, change = opt_out_records("infobip", "acme", CONTACT, True, "keyword:STOP")
    cut = change.value[:change.value.index(CONTACT.encode()) + len(CONTACT) + 2]
    broken = OutRecord(change.topic, cut, change.key, change.headers)
    with pytest.raises(PoisonRecord) as raised:
        await sender.handle(consumed(broken), FakeContext())
    assert str(raised.value).startswith("not an opt-out change: ")
    assert CONTACT not in str(raised.value) and CONTACT[1:] not in str(raised.value)


def change(opted_out: bool, at: datetime) -> OutRecord:
    state = OptOutState(account="acme", contact=CONTACT, opted_out=opted_out, source="test",
                        at=at)
    return OutRecord(OPT_OUTS.name, state.model_dump_json().encode(), opt_out_key("acme", CONTACT))


def test_a_change_met_early_is_not_undone_by_an_older_record_the_table_reads_later() -> None:
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    opt_outs = OptOutList(table)
    start = change(False, datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    stop = change(True, datetime(2026, 11, 1, 12, 1, tzinfo=UTC))
    opt_outs.remember(stop.value)  # met on the outbound topic first
    table._apply(read(start))  # the follower, behind, reads the older START only now
    assert opt_outs.is_opted_out("acme", CONTACT)
    table._apply(read(stop))  # and catches up
    assert opt_outs.is_opted_out("acme", CONTACT)
    assert opt_outs._ahead == {}  # nothing kept beside the table once it has read the change

    opt_outs.remember(start.value)  # an old change redelivered: the newer STOP stands
    assert opt_outs.is_opted_out("acme", CONTACT)


def test_a_time_without_an_offset_is_unreadable_not_a_later_crash() -> None:
    # A naive `at` compared with the next STOP's aware time raised TypeError in the bot, so
    # every later STOP of that contact was dead-lettered; now the record itself is refused
    # (the table reads it as unreadable: opted out, test_opt_out_unreadable).
    naive = {"account": "acme", "contact": CONTACT, "opted_out": False, "source": "import",
             "at": "2024-05-01T10:00:00"}
    with pytest.raises(ValueError, match="timezone"):
        decode_opt_out(orjson.dumps(naive))
    assert decode_opt_out(orjson.dumps({**naive, "at": "2024-05-01T10:00:00Z"})).at.tzinfo


def test_changes_the_table_has_read_do_not_pile_up_beside_it() -> None:
    """Contacts never looked up again must not stay in the side list for the process's life."""
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    opt_outs = OptOutList(table)
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for n in range(5 * OptOutList.SWEEP_FROM):
        state = OptOutState(account="acme", contact=f"+41790{n:06d}", opted_out=True,
                            source="test", at=at)
        value = state.model_dump_json().encode()
        opt_outs.remember(value)  # met on the outbound topic first
        table._apply(FakeRecord(opt_out_key("acme", state.contact), value, n))
    assert len(opt_outs._ahead) < OptOutList.SWEEP_FROM
    assert opt_outs.is_opted_out("acme", "+41790000000")  # the table still knows every one

    behind = OptOutState(account="acme", contact="+41799999999", opted_out=True, source="test",
                         at=at)
    opt_outs.remember(behind.model_dump_json().encode())  # the table has not read this one
    opt_outs._sweep()
    assert opt_outs.is_opted_out("acme", "+41799999999")


async def test_a_result_is_keyed_like_its_command_even_for_an_unknown_account(
        sender: Sender) -> None:
    ctx = FakeContext()
    record = command_record(OutboundCommand(id=str(uuid.uuid4()), account="nobody", to=CONTACT,
                                            text="Hi", created_at=datetime.now(UTC)), "infobip")
    await sender.handle(consumed(record), ctx)
    [result] = [r for r in ctx.published if r.topic == OUTBOUND_RESULTS.name]
    assert result.key == record.key == f"infobip|nobody|{CONTACT}".encode()
    assert orjson.loads(result.value)["error"]["code"] == "unknown_account"


@pytest.mark.parametrize("key", [None, b"acme", f"infobip|acme|{CONTACT[1:]}".encode()])
async def test_a_command_under_another_key_is_re_keyed_unsent(
        sender: Sender, provider_calls: list[httpx.Request], key: bytes | None) -> None:
    keyed = command()
    ctx = FakeContext()
    await sender.handle(consumed(OutRecord(keyed.topic, keyed.value, key, keyed.headers)), ctx)
    [copy] = ctx.published
    assert (copy.topic, copy.key, copy.value, copy.headers) == (
        keyed.topic, keyed.key, keyed.value, keyed.headers)
    assert provider_calls == []


async def test_copies_of_an_id_under_other_keys_reach_the_provider_once(
        sender: Sender, provider_calls: list[httpx.Request]) -> None:
    # Unkeyed copies could sit in two partitions and be sent at once; re-keyed, they queue in
    # one partition, where the second finds the first's outcome.
    keyed = command()
    ctx = FakeContext()
    for key in (None, b"other"):
        await sender.handle(consumed(OutRecord(keyed.topic, keyed.value, key, keyed.headers)),
                            ctx)
    copies = list(ctx.published)
    ctx.published.clear()
    for copy in copies:
        await sender.handle(consumed(copy), ctx)
    first, second = results(ctx)
    assert first == second and first["status"] == "accepted"
    assert len(provider_calls) == 1


async def test_a_bad_outbound_table_is_reported_without_its_values(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A misspelt key still holds a secret: pydantic's own message would quote it.
    secret = "SUPER-SECRET-API-KEY-123"
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "apikey": secret, "sender": "Acme"},
    }}})
    configure_logging("INFO", "json")
    async with httpx.AsyncClient() as http:
        sender = Sender(accounts, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger), http, public_url=None)
        sender.check_outbound()
        ctx = FakeContext()
        await sender.handle(consumed(command()), ctx)
    [result] = results(ctx)
    logged = capsys.readouterr().err
    assert result["error"]["code"] == "bad_outbound_config"
    assert "outbound.apikey" in result["error"]["description"] and "outbound.apikey" in logged
    assert secret not in result["error"]["description"] and secret not in logged


async def test_content_refused_before_calling_the_provider_counts_no_attempt(
        sender: Sender, provider_calls: list[httpx.Request]) -> None:
    ctx = FakeContext()
    two_images = [{"url": f"https://example.com/{n}.png", "content_type": "image/png"}
                  for n in range(2)]
    record = command_record(OutboundCommand.model_validate({
        "id": str(uuid.uuid4()), "account": "acme", "to": CONTACT, "text": "Look",
        "media": two_images, "created_at": datetime.now(UTC)}), "infobip")
    await sender.handle(consumed(record), ctx)
    [result] = results(ctx)
    assert (result["error"]["code"], result["attempts"]) == ("unsupported_content", 0)
    assert provider_calls == []


@pytest.mark.parametrize(("value", "problem"), [
    ({"account": "acme", "to": CONTACT, "text": "Hi"}, "created_at: Field required"),
    ({"account": "acme", "to": CONTACT, "created_at": "2026-11-01T12:00:00Z"},
     "command: a command needs text or media"),
    ({"account": "acme", "to": CONTACT, "text": "Hi", "created_at": "2026-11-01T12:00:00Z",
      "priority": "high"}, "priority: Extra inputs are not permitted"),
    ({"account": "acme", "to": CONTACT, "created_at": "2026-11-01T12:00:00Z",
      "media": [{"url": "https://example.com/a.png", "contentType": "image/png"}]},
     "media.0.contentType: Extra inputs are not permitted"),
])
async def test_an_invalid_command_with_an_id_gets_a_failed_result_and_is_dead_lettered(
        sender: Sender, provider_calls: list[httpx.Request], value: dict[str, Any],
        problem: str) -> None:
    ctx = FakeContext()
    command_id = str(uuid.uuid4())
    key = f"infobip|acme|{CONTACT}".encode()
    record = Record("switchboard.outbound.v1", 0, 0, key,
                    orjson.dumps({"id": command_id, "metadata": {"order": "42"}, **value}), ())
    with pytest.raises(PoisonRecord) as poison:
        await sender.handle(record, ctx)
    assert (poison.value.provider, poison.value.account) == ("infobip", "acme")  # dead letter's
    [result] = [r for r in ctx.published if r.topic == OUTBOUND_RESULTS.name]
    assert result.key == key
    found = orjson.loads(result.value)
    assert (found["command_id"], found["status"], found["attempts"]) == (command_id, "failed", 0)
    assert (found["provider"], found["metadata"]) == ("infobip", {"order": "42"})
    assert found["error"]["code"] == "invalid_command" and problem in found["error"]["description"]
    assert provider_calls == []

    fixed = command_record(OutboundCommand(id=command_id, account="acme", to=CONTACT,
                                           text="Hi", created_at=datetime.now(UTC)), "infobip")
    ctx.published.clear()
    await sender.handle(consumed(fixed), ctx)  # the same id, corrected, is still sent
    assert results(ctx)[0]["status"] == "accepted" and len(provider_calls) == 1


async def test_a_command_without_a_readable_id_is_only_dead_lettered(sender: Sender) -> None:
    ctx = FakeContext()
    for value in (b"{not json", b"[1, 2]", orjson.dumps({"account": "acme", "text": "Hi"})):
        with pytest.raises(PoisonRecord):
            await sender.handle(Record("switchboard.outbound.v1", 0, 0, None, value, ()), ctx)
    assert ctx.published == []


class HiccupContext(FakeContext):
    """Kafka refuses the first publish that carries a result, then takes everything."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = False

    async def publish(self, records: Any) -> None:
        if not self.refused and any(r.topic == OUTBOUND_RESULTS.name for r in records):
            self.refused = True
            raise PublishError("Kafka did not acknowledge within 5.0s")
        await super().publish(records)


async def test_a_send_whose_result_could_not_be_stored_is_reported_accepted_on_retry(
        sender: Sender, provider_calls: list[httpx.Request]) -> None:
    ctx, sent = HiccupContext(), consumed(command())
    with pytest.raises(PublishError):
        await sender.handle(sent, ctx)
    await sender.handle(sent, ctx)  # the runtime's retry of the same record
    ledger = [decode_ledger(r.value).state for r in ctx.published
              if r.topic == OUTBOUND_SENT.name]
    [result] = results(ctx)
    # Not outcome_unknown: the sender knew the provider took it, and stores that now.
    assert result["status"] == "accepted" and len(provider_calls) == 1
    assert ledger == ["pending", "sent"]


def test_the_ledger_keeps_an_outcome_when_its_earlier_pending_mark_is_read_back() -> None:
    table = CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger, stands=ledger_stands)
    key = b"cmd-1"
    pending = LedgerEntry(state="pending")
    table.put_local(key, pending)
    done = LedgerEntry(state="failed", result=None)
    table.put_local(key, done)
    table._apply(Record(OUTBOUND_SENT.name, 0, 0, key, pending.model_dump_json().encode(), ()))
    assert table.get(key) == done


async def test_a_send_waiting_to_retry_is_given_back_unsent_when_the_sender_stops() -> None:
    calls: list[int] = []
    refused = asyncio.Event()

    def busy_then_fine(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            refused.set()
            return httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "30"})
        return httpx.Response(200, json={"messages": [{"messageId": "ib-2"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(busy_then_fine)) as http:
        def sender() -> Sender:
            return Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                   decode_ledger), http, public_url=None,
                          opt_outs=OptOutList(CompactedTable("unused:9092", OPT_OUTS.name,
                                                             decode_opt_out)))
        first, ctx, sent = sender(), FakeContext(), consumed(command())
        handling = asyncio.create_task(first.handle(sent, ctx))
        await asyncio.wait_for(refused.wait(), 5)
        ctx.winding_down.set()  # SIGTERM during the 30 s Retry-After
        with pytest.raises(GiveBack):
            await asyncio.wait_for(handling, 5)
        marks = [r for r in ctx.published if r.topic == OUTBOUND_SENT.name]
        assert [decode_ledger(r.value).state for r in marks] == ["pending", "released"]

        # The next sender reads the ledger as it was left, and sends it (not outcome_unknown).
        second, again = sender(), FakeContext()
        for mark in marks:
            second.ledger._apply(Record(OUTBOUND_SENT.name, 0, 0, mark.key, mark.value, ()))
        await second.handle(sent, again)
        [result] = results(again)
        assert result["status"] == "accepted" and len(calls) == 2


@pytest.mark.parametrize("retry_after", [{"Retry-After": "30"}, {}])
async def test_a_rate_refusal_holds_every_send_of_the_account_not_just_the_refused_one(
        retry_after: dict[str, str]) -> None:
    """A 429 with its Retry-After, or without one (held for the backoff): sending the
    account's other commands meanwhile would only be refused too."""
    calls: list[int] = []
    refused = asyncio.Event()

    def banned(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        refused.set()
        return httpx.Response(429, json={"error": "slow down"}, headers=retry_after)

    async with httpx.AsyncClient(transport=httpx.MockTransport(banned)) as http:
        sender = Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger), http, public_url=None)
        ctx = FakeContext()
        first = asyncio.create_task(sender.handle(consumed(command()), ctx))
        await asyncio.wait_for(refused.wait(), 5)
        second = asyncio.create_task(sender.handle(consumed(command()), ctx))
        await asyncio.sleep(0.1)  # time enough to call the provider, were it not held
        assert len(calls) == 1
        ctx.winding_down.set()  # both are handed back unsent, for the next sender
        for task in (first, second):
            with pytest.raises(GiveBack):
                await asyncio.wait_for(task, 5)
    assert len(calls) == 1


async def test_a_send_waiting_for_the_rate_limit_is_given_back_when_the_sender_stops() -> None:
    # Not started at the provider: like a send waiting out a Retry-After, it is the next
    # sender's. Sent during the shutdown instead, it holds up the stop (a low rate_per_s and
    # 32 sends in flight is half a minute), and one cut short by the SIGKILL that follows
    # reads as outcome_unknown: a message never tried, failed.
    calls: list[int] = []

    def provider(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json={"messages": [{"messageId": f"ib-{len(calls)}"}]})

    slow = parse_accounts({"accounts": {"acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "api_key": "ib-key",
                     "sender": "Acme", "rate_per_s": 0.2, "burst": 1},
    }}})
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = Sender(slow, CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger),
                        http, public_url=None)
        ctx = FakeContext()
        first, second = command(), command()
        await sender.handle(consumed(first), ctx)  # the burst's one token
        waiting = asyncio.create_task(sender.handle(consumed(second), ctx))
        await asyncio.sleep(0.1)  # its token comes in 5 s
        ctx.winding_down.set()  # SIGTERM
        with pytest.raises(GiveBack):
            await asyncio.wait_for(waiting, 1)
    assert len(calls) == 1

    def marks(record: OutRecord) -> list[str]:
        key = orjson.loads(record.value)["id"].encode()
        return [decode_ledger(r.value).state for r in ctx.published
                if r.topic == OUTBOUND_SENT.name and r.key == key]
    assert marks(first) == ["pending", "sent"]
    # Never marked pending while it waited: a SIGKILL then leaves it unmarked, and the next
    # sender sends it rather than report outcome_unknown.
    assert marks(second) == []


@pytest.mark.parametrize(("attempt", "retry_after", "waited"), [
    (1, None, 0.5), (3, None, 2.0),  # the backoff
    (1, 10.0, 10.0), (1, 3600.0, 3600.0),  # the provider's wait, in full
    (1, 0.0, 0.5), (3, 0.0, 2.0), (4, 1.0, 4.0),  # never sooner than the backoff
])
def test_a_retry_waits_the_backoff_or_the_providers_longer_wait(
        sender: Sender, attempt: int, retry_after: float | None, waited: float) -> None:
    assert sender._delay(attempt, retry_after) == waited


# JSON may spell a lone UTF-16 surrogate ("\ud83d": what a JavaScript backend makes of an emoji
# it cut in half); Python reads it, but it cannot be written as UTF-8, so neither can a result
# that quotes it.
HALF_EMOJI = r"\ud83d"


@pytest.mark.parametrize(("status", "body", "outcome"), [
    (200, f'{{"messages": [{{"messageId": "ib-{HALF_EMOJI}7"}}]}}', ("accepted", None)),
    (400, f'{{"errorCode": "E400{HALF_EMOJI}", "description": "bad {HALF_EMOJI}"}}',
     ("failed", "E400\ufffd")),
])
async def test_provider_text_that_cannot_be_stored_still_gives_its_result(
        status: int, body: str, outcome: tuple[str, str | None]) -> None:
    def provider(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body.encode(),
                              headers={"content-type": "application/json"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger), http, public_url=None)
        ctx = FakeContext()
        await sender.handle(consumed(command()), ctx)
    [result] = results(ctx)
    # Not a crash storing it (again at every retry, until the command was dead-lettered without
    # a result although the provider had answered): the text, its half character replaced.
    assert (result["status"], (result["error"] or {}).get("code")) == outcome
    if status == 200:
        assert result["provider_message_id"] == "ib-\ufffd7"
    else:
        assert "bad \ufffd" in result["error"]["description"]


async def test_commands_refused_without_a_call_are_counted(sender: Sender) -> None:
    # switchboard_sender_sends_total counted provider calls only: an account whose commands
    # were all refused (opted out, unknown, misconfigured) showed no traffic at all.
    ctx, _ = await opted_out(sender)
    before = sends_counted("infobip", "acme", "opted_out")
    await sender.handle(consumed(command()), ctx)
    assert sends_counted("infobip", "acme", "opted_out") == before + 1

    # A name that is no account could be anything (a producer's typo, made up by the
    # thousand): it is no label of its own, or every one would make a time series.
    before = sends_counted("", "", "unknown_account")
    unknown = command_record(OutboundCommand(id=str(uuid.uuid4()), account="nobody",
                                             to=CONTACT, text="Hi",
                                             created_at=datetime.now(UTC)), "infobip")
    await sender.handle(consumed(unknown), ctx)
    assert sends_counted("", "", "unknown_account") == before + 1

    before = sends_counted("infobip", "acme", "invalid_command")
    invalid = Record("switchboard.outbound.v1", 0, 0, f"infobip|acme|{CONTACT}".encode(),
                     orjson.dumps({"id": str(uuid.uuid4()), "account": "acme", "to": CONTACT}),
                     ())
    with pytest.raises(PoisonRecord):
        await sender.handle(invalid, ctx)
    assert sends_counted("infobip", "acme", "invalid_command") == before + 1


async def test_a_misconfigured_account_and_a_crashed_send_are_counted() -> None:
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "sender": "Acme"},  # no api_key
    }}})
    async with httpx.AsyncClient() as http:
        sender = Sender(accounts, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger), http, public_url=None)
        ctx = FakeContext()
        before = sends_counted("infobip", "acme", "bad_outbound_config")
        await sender.handle(consumed(command()), ctx)
        assert sends_counted("infobip", "acme", "bad_outbound_config") == before + 1

        # A command its previous sender left pending (killed mid-call): that sender never
        # counted it, this one reports it.
        crashed = command()
        pending = LedgerEntry(state="pending")
        sender.ledger.put_local(OutboundCommand.from_json(crashed.value).id.encode(), pending)
        before = sends_counted("infobip", "acme", "outcome_unknown")
        await sender.handle(consumed(crashed), ctx)
        assert sends_counted("infobip", "acme", "outcome_unknown") == before + 1


async def test_a_web_page_answered_with_200_is_reported_failed_and_not_resent(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A base_url pointing at a website had every command reported accepted, none sent.
    calls: list[httpx.Request] = []

    def website(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, html="<html><head><title>Welcome to nginx!</title></head>")

    configure_logging("INFO", "json")
    async with httpx.AsyncClient(transport=httpx.MockTransport(website)) as http:
        sender = Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger), http, public_url=None)
        ctx = FakeContext()
        await sender.handle(consumed(command()), ctx)
    [result] = results(ctx)
    assert (result["status"], result["error"]["code"]) == ("failed", "bad_response")
    assert not result["error"]["permanent"] and len(calls) == 1
    assert "Welcome to nginx!" in result["error"]["description"]
    [warning] = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
                 if "send failed" in line]
    assert warning["account"] == "acme" and "text/html" in warning["error"]
