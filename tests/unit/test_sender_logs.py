"""What the sender logs about one command: every line names the command's id and its account,
so an operator can follow a message through the log (a command produced without CloudEvents
headers has no `event_id` for the runtime to log); none carries a secret or the message text.

No broker: records are handed to the handler as the runtime would; the provider is an
in-process httpx transport answering from a script.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from consumers.handling import PoisonRecord, Record
from consumers.ledger import LedgerEntry, decode_ledger
from consumers.send_attempts import SendPolicy
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.logs import configure_logging
from switchboard.records import command_record
from switchboard.topics import OUTBOUND_SENT
from tests.unit.fakes import FakeContext

API_KEY = "ib-api-key-that-is-never-logged"
TEXT = "Your one-time code is 918273"
ACCOUNTS = parse_accounts({"accounts": {"acme": {
    "provider": "infobip",
    "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
    "outbound": {"base_url": "http://provider.test", "api_key": API_KEY, "sender": "Acme"},
}}})
FAST = SendPolicy(base_delay_s=0, max_delay_s=0)

Answer = Callable[[], httpx.Response]


def accepted() -> httpx.Response:
    return httpx.Response(200, json={"messages": [{"messageId": "ib-1"}]})


def unavailable() -> httpx.Response:
    return httpx.Response(503, json={"errorCode": "E503", "description": "Try later"})


def throttled() -> httpx.Response:
    return httpx.Response(429, json={"errorCode": "E429", "description": "Too many requests"},
                          headers={"Retry-After": "0"})


def invalid() -> httpx.Response:
    return httpx.Response(400, json={"errorCode": "E400", "description": f"bad: {API_KEY}"})


def new_command() -> OutboundCommand:
    return OutboundCommand(id=f"cmd-{uuid.uuid4()}", account="acme", to="+41790000111",
                           text=TEXT, created_at=datetime.now(UTC))


def new_sender(http: httpx.AsyncClient) -> Sender:
    return Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger),
                  http, public_url=None, policy=FAST)


async def handle(command: OutboundCommand, answers: list[Answer], *, keyed: bool = True,
                 pending: bool = False) -> None:
    """The command handled by a fresh sender, the provider answering `answers` in turn."""
    def provider(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)() if len(answers) > 1 else answers[0]()

    record = command_record(command, "infobip")
    if not keyed:  # as a producer that keys commands by something else would
        record = replace(record, key=None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = new_sender(http)
        if pending:  # its previous sender was killed mid-call
            sender.ledger.put_local(command.id.encode(), LedgerEntry(state="pending"))
        ctx = FakeContext()
        await sender.handle(Record(record.topic, 0, 0, record.key, record.value,
                                   tuple(record.headers)), ctx)


@pytest.mark.parametrize(("answers", "options", "events"), [
    ([accepted], {}, {"send accepted"}),
    ([unavailable, accepted], {}, {"send failed, retrying", "send accepted"}),
    ([throttled, accepted], {}, {"provider asked to wait: holding this account's sends",
                                 "send failed, retrying", "send accepted"}),
    ([invalid], {}, {"send failed"}),
    ([accepted], {"pending": True},
     {"command found pending: its sender was killed mid-call; not resending"}),
    ([accepted], {"keyed": False},
     {"command not keyed by its conversation: re-keyed before sending (key commands with "
      "switchboard.records.command_record)"}),
], ids=["accepted", "retried", "held", "failed", "found-pending", "re-keyed"])
async def test_every_line_about_a_send_names_the_command_and_its_account(
        answers: list[Answer], options: dict[str, Any], events: set[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    # The retry, the hold and the acceptance were not logged at all, the hold and the re-keying
    # named no command, the command found pending no account: one message could not be
    # followed through the log by its id.
    configure_logging("DEBUG", "json")
    command = new_command()
    await handle(command, list(answers), **options)
    err = capsys.readouterr().err
    lines = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("logger") == "consumers.sender"]
    assert events <= {line["event"] for line in mine}
    for line in mine:
        assert (line.get("command"), line.get("account")) == (command.id, "acme"), line
    assert API_KEY not in err and TEXT not in err


async def test_an_invalid_command_is_dead_lettered_for_its_problem_not_its_text() -> None:
    # The reason quoted pydantic's errors, whose `input` is the whole command: the runtime's
    # "record dead-lettered" line then logged the message text and the recipient.
    value = orjson.dumps({"id": "cmd-1", "account": "acme", "to": "+41790000111", "text": TEXT})
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: accepted())) as http:
        with pytest.raises(PoisonRecord) as poison:
            await new_sender(http).handle(Record("switchboard.outbound.v1", 0, 0, None, value),
                                          FakeContext())
    assert str(poison.value) == "not an outbound command: created_at: Field required"


async def test_an_accepted_send_is_not_logged_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    # One line per message at any volume (as httpx's own, kept at DEBUG for that reason).
    configure_logging("INFO", "json")
    await handle(new_command(), [accepted])
    assert "send accepted" not in capsys.readouterr().err


async def test_a_provider_outage_logs_its_retries_once_then_their_count(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Every command in flight meets the outage at each backoff: a line per attempt was
    # hundreds a second. The final failure of each command is still its own line.
    configure_logging("INFO", "json")
    commands = [new_command() for _ in range(10)]
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: unavailable())) as http:
        sender = new_sender(http)
        for command in commands:
            record = command_record(command, "infobip")
            await sender.handle(Record(record.topic, 0, 0, record.key, record.value,
                                       tuple(record.headers)), FakeContext())
        sender.retry_log.flush()  # the window's end, or the worker stopping
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    retries = [line for line in lines if line["event"].startswith("send failed, retrying")]
    retried = (FAST.max_attempts - 1) * len(commands)
    assert [line.get("more") for line in retries] == [None, retried - 1]
    assert retries[0]["command"] == commands[0].id
    assert (retries[1]["account"], retries[1]["code"]) == ("acme", retries[0]["code"])
    failed = [line["command"] for line in lines if line["event"] == "send failed"]
    assert failed == [command.id for command in commands]


@pytest.mark.parametrize(("key", "problem"), [
    (None, "no key"),
    (b"+41790000111", "not provider|account|contact"),
    (b"bird|acme|+41790000111", "another provider"),
    (b"infobip|ACME|+41790000111", "another account"),
    (b"infobip|acme|0041790000111", "the contact spelt otherwise than events spell it"),
], ids=["none", "contact-only", "provider", "account", "contact"])
async def test_the_re_keying_line_says_what_is_wrong_with_the_key_without_its_contact(
        key: bytes | None, problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    # It logged the key as given, which holds the recipient's number: contact data in the log.
    configure_logging("INFO", "json")
    command = new_command()
    record = command_record(command, "infobip")
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: accepted())) as http:
        await new_sender(http).handle(Record(record.topic, 0, 0, key, record.value,
                                             tuple(record.headers)), FakeContext())
    err = capsys.readouterr().err
    [line] = [orjson.loads(line) for line in err.splitlines() if "not keyed" in line]
    assert line["key_problem"] == problem
    assert "41790000111" not in err


async def test_a_refusal_quoting_the_recipient_is_logged_without_the_number(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Providers quote the number they refuse ("Invalid destination address"), and a 2xx that is
    # not the API's answer is quoted from its start, which may echo the request: the `send
    # failed` and `send failed, retrying` lines carried the recipient's number and the text.
    configure_logging("INFO", "json")
    command = new_command()

    def quoting(status: int) -> Answer:
        return lambda: httpx.Response(status, json={
            "errorCode": f"E{status}",
            "description": f"Invalid destination 41790000111, {command.to} for {TEXT!r}"})

    answers = [quoting(503), quoting(400)]
    ctx = FakeContext()
    async with httpx.AsyncClient(transport=httpx.MockTransport(
            lambda _: answers.pop(0)())) as http:
        sender = new_sender(http)
        record = command_record(command, "infobip")
        await sender.handle(Record(record.topic, 0, 0, record.key, record.value,
                                   tuple(record.headers)), ctx)
        sender.retry_log.flush()
    err = capsys.readouterr().err
    lines = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"send failed, retrying", "send failed"} <= {line["event"] for line in lines}
    assert "41790000111" not in err and TEXT not in err
    # The result names the recipient anyway: the provider's words reach it as they are.
    [result] = [orjson.loads(r.value) for r in ctx.published if r.topic.endswith("results.v1")]
    assert command.to in result["error"]["description"]


@pytest.mark.parametrize("echoed", [
    "0041790000111",  # the international prefix for the +
    "+41 79 000 01 11",  # spaced
    "41-79-000-0111",  # dashed
    "+41 (0)79 000.01.11",  # the trunk 0 in brackets, dotted
    "079 000 01 11",  # national, with its 0
    "790000111",  # national, without it
    "0000111",  # the last 7 digits alone
], ids=["00-prefix", "spaced", "dashed", "bracketed-0", "national", "national-without-0",
        "last-7"])
async def test_a_refusal_echoing_the_recipient_reformatted_is_logged_without_it(
        echoed: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Only the number as the command spells it (and without its +) was masked: a provider
    # echoing it spaced, dashed, with 00 or in national format put it into the log line.
    configure_logging("INFO", "json")
    command = new_command()  # to +41790000111
    await handle(command, [lambda: httpx.Response(400, json={
        "errorCode": "21211", "description": f"Invalid 'To' number {echoed} (see error 21211)"})])
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    [failed] = [line for line in lines if line["event"] == "send failed"]
    assert failed["error"] == "HTTP 400: Invalid 'To' number <recipient> (see error 21211)"


async def test_a_long_refusal_is_logged_cut_and_masked(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A provider's text has no length limit, and finding the number however written looked
    # at all of it (a run of "(0)" took seconds at 18 KB, holding every send).
    configure_logging("INFO", "json")
    padding = "(0)" * 5000
    await handle(new_command(), [lambda: httpx.Response(400, json={
        "errorCode": "21211", "description": f"bad 0041 79 000 01 11 {padding}"})])
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    [failed] = [line for line in lines if line["event"] == "send failed"]
    assert failed["error"].startswith("HTTP 400: bad <recipient> (0)(0)")
    assert failed["error"].endswith(" more characters)")
    assert len(failed["error"]) < 2100


@pytest.mark.parametrize("description", [
    "number 41790000112 is not allowed",  # another number, one digit off
    "number 3120000111 is not allowed",  # another, whose last 7 digits are the recipient's
    "rate 1790000 reached at 2024-01-01 00:01:11",  # the digits, not in a row
], ids=["another-number", "same-last-7", "scattered"])
async def test_numbers_that_are_not_the_recipient_stay_in_the_log_line(
        description: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    await handle(new_command(), [lambda: httpx.Response(400, json={
        "errorCode": "E400", "description": description})])
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    [failed] = [line for line in lines if line["event"] == "send failed"]
    assert failed["error"] == f"HTTP 400: {description}"


async def test_a_text_quoting_the_recipient_is_masked_as_the_text(
        capsys: pytest.CaptureFixture[str]) -> None:
    # The number was masked first, so the text around it no longer matched and was logged.
    configure_logging("INFO", "json")
    command = new_command().model_copy(update={"text": "Call +41790000111 back today"})
    await handle(command, [lambda: httpx.Response(400, json={
        "errorCode": "E400", "description": f"refused: {command.text}"})])
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    [failed] = [line for line in lines if line["event"] == "send failed"]
    assert failed["error"] == "HTTP 400: refused: <text>"
