"""The sender worker: outbound commands in, provider send API calls out, one result per command.

No command id reaches a provider twice. Before calling the provider the sender durably marks
the command `pending` in the compacted ledger topic, and after the call `sent` or `failed`.
A redelivered command (crash, rebalance) finds its mark: `sent`/`failed` republish the same
result; `pending` means the process died mid-call, the provider may or may not have the
message, and the sender reports a failure instead of risking a duplicate (at most once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

import httpx
import orjson
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from consumers.failure_text import traceback_without_text
from consumers.handling import Context, GiveBack, PoisonRecord, Record
from consumers.outbound import SendContext, SendError, SendReceipt, build_client
from consumers.outbound.base import (
    HELD_FOR,
    SEND_PROGRESS,
    WINDING_DOWN,
    Held,
    OutboundClient,
    OutboundConfig,
    SendProgress,
    Stopping,
)
from consumers.table import CompactedTable
from switchboard.accounts import Account, Accounts
from switchboard.commands import (
    REACHES_OPTED_OUT,
    OutboundCommand,
    OutboundResult,
    ResultStatus,
)
from switchboard.events import ErrorInfo
from switchboard.futures import retrieve
from switchboard.logs import get_logger
from switchboard.records import (
    OPT_OUT_CHANGE_TYPE,
    OutRecord,
    ce_type_of,
    conversation_key,
    result_record,
)
from switchboard.settings import validation_problems
from switchboard.throttle import ThrottledLog
from switchboard.topics import OUTBOUND_SENT

# Every line about a command names it (`command`, its id) and its `account`: a command produced
# without CloudEvents headers has no `event_id` for the runtime to log. Never the message's text.
log = get_logger(__name__)
_DEFAULT_CHANNEL: str = OutboundConfig.model_fields["channel"].default
# One per provider call, by how it ended (accepted, retryable, permanent, outcome_unknown, and
# error: one the client does not expect), and one per command failed without a call, by its
# error code (opted_out, unknown_account,
# bad_outbound_config, invalid_command, held; outcome_unknown for one found pending), so an
# account whose commands are all refused still shows. An unknown account is counted under
# account "": its name could be anything, and each would make a time series.
SENDS = Counter("switchboard_sender_sends_total",
                "Provider send attempts, and commands failed without one, by outcome",
                ["provider", "account", "outcome"])
# A lone UTF-16 surrogate: JSON may spell one ("\ud83d", what a JavaScript backend makes of an
# emoji it cut in half) and Python reads it, but it cannot be written as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REKEYED = Counter("switchboard_sender_rekeyed_total",
                  "Commands put back on the outbound topic under their conversation's key",
                  ["provider", "account"])


_PROGRESS = {"released": 0, "pending": 1, "sent": 2, "failed": 2}


class LedgerEntry(BaseModel):
    # "released": given back unsent while the sender stopped; whoever handles it next sends it.
    state: Literal["pending", "sent", "failed", "released"]
    result: OutboundResult | None = None

    def supersedes(self, other: LedgerEntry) -> bool:
        """Against the id's record in another partition of the ledger (its topic gained
        partitions): the further state, an outcome, else `pending` (the provider may have it:
        not sent again), else `released`."""
        return _PROGRESS[self.state] > _PROGRESS[other.state]


def decode_ledger(value: bytes) -> LedgerEntry:
    return LedgerEntry.model_validate_json(value)


def ledger_stands(current: LedgerEntry, read: LedgerEntry) -> bool:
    """An outcome is final: the "pending" mark written before it, read back late, must not
    undo it (a redelivered command would then be reported `outcome_unknown`)."""
    return current.state in ("sent", "failed") and read.state in ("pending", "released")


def _storable(text: str | None) -> str | None:
    """A provider's text as a result can carry it: lone surrogates replaced by U+FFFD. Storing
    the result would fail otherwise, again at every retry, and the command be dead-lettered
    without one although the provider answered."""
    if text is None or text.isascii():
        return text
    return _LONE_SURROGATE.sub("\ufffd", text)


def _key_problem(key: bytes | None, account: Account) -> str:
    """What is wrong with a command's key, for the producer to fix, without quoting it: its
    contact part is the recipient's number."""
    if not key:
        return "no key"
    parts = key.decode("utf-8", "replace").split("|", 2)
    if len(parts) != 3:
        return "not provider|account|contact"
    if parts[0] != account.provider:
        return "another provider"
    if parts[1] != account.name:
        if unicodedata.normalize("NFC", parts[1]) == unicodedata.normalize("NFC", account.name):
            # Re-keyed all the same: the key picks the partition, and only the name as
            # configured puts the command in its conversation's, with the opt-outs of it.
            return (f"the account's name in another Unicode form than configured "
                    f"({_form(parts[1])}, {_form(account.name)})")
        return "another account"
    return "the contact spelt otherwise than events spell it"


def _form(name: str) -> str:
    for form in ("NFC", "NFD"):
        if unicodedata.is_normalized(form, name):
            return form
    return "neither NFC nor NFD"


def _unquoted(text: str, command: OutboundCommand) -> str:
    """A provider's text as a log line may carry it: without the message's text or the
    recipient, which a refusal or an echoed request may quote. The text first: it may hold the
    number, and would not be found once that is masked. Then, in the first _LOGGED_CHARS only
    (a provider's text has no length limit, and a log line needs no more), the number however
    written, and as the command spells it (a user id; a number run into other digits).
    Results keep the text as it is: they carry both anyway."""
    if command.text and len(command.text) >= 4:
        text = text.replace(command.text, "<text>")
    if len(text) > _LOGGED_CHARS:
        text = f"{text[:_LOGGED_CHARS]}... ({len(text) - _LOGGED_CHARS} more characters)"
    if (echoed := _echoed_number(command.to)) is not None:  # before the spelling: `00` too
        text = echoed.sub("<recipient>", text)
    for quoted in (command.to, command.to.lstrip("+")):
        if len(quoted) >= 4:
            text = text.replace(quoted, "<recipient>")
    return text


_LOGGED_CHARS = 2000
# Between a number's digits as providers write it: spaces, dashes, dots, slashes, brackets,
# and the trunk 0 some write in brackets after the country code (`+41 (0)79`).
# Possessive, the bracketed 0 tried first: written `(?:[\s.\-/()]|\(0\))*`, a run of `(0)`
# could be split many ways, and each was tried at each place the number could start.
_SEPARATOR = r"(?:\(0\)|[\s.\-/()])*+"
# A number echoed is known by its last digits: the ones before them may be left out (national
# format) or changed (`00` for `+`, a trunk 0 for the country code). Seven: fewer match too
# many other numbers (codes, amounts, dates); no subscriber number is shorter.
_TAIL_DIGITS = 7
_number_like = re.compile(r"\+?[0-9][0-9\s.\-/()]*").fullmatch


@functools.lru_cache(maxsize=256)
def _echoed_number(to: str) -> re.Pattern[str] | None:
    """What finds a recipient's number in a provider's text however it is written there: its
    last 7 digits, led by any end of the digits before them, or by `+`, `00` or `0`, each digit
    apart from the next by separators, and no digit right before or after. None for a `to` that
    is no number of 7 digits or more (a user key, a short code)."""
    digits = "".join(char for char in to if char.isdigit())
    if _number_like(to) is None or len(digits) < _TAIL_DIGITS:
        return None
    lead, tail = digits[:-_TAIL_DIGITS], digits[-_TAIL_DIGITS:]
    leads = "|".join(_SEPARATOR.join(lead[start:]) for start in range(len(lead)))
    pattern = (rf"(?<![0-9])(?:(?:\+|00|0){_SEPARATOR})?"
               + (rf"(?:(?:{leads}){_SEPARATOR})?" if lead else "")
               + _SEPARATOR.join(tail) + "(?![0-9])")
    return re.compile(pattern)


def _account_channel(account: Account) -> str:
    """The channel of an account's commands that name none: its `outbound.channel`, else the
    default of every provider's outbound config."""
    channel = account.outbound.get("channel")
    return channel if isinstance(channel, str) else _DEFAULT_CHANNEL


def _ledger_record(key: bytes, entry: LedgerEntry) -> OutRecord:
    return OutRecord(OUTBOUND_SENT.name, entry.model_dump_json().encode(), key)


class OptOutCheck(Protocol):
    """Who may not be messaged (the bots' opt-out list implements it)."""

    def is_opted_out(self, account: str, contact: str) -> bool: ...

    def remember(self, value: bytes) -> None:
        """An opt-out change met on the outbound topic (raises ValueError if unreadable)."""


class NoOptOuts:
    def is_opted_out(self, account: str, contact: str) -> bool:
        return False

    def remember(self, value: bytes) -> None:
        return None


@dataclass
class SendPolicy:
    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0  # of the backoff; a provider's Retry-After may be longer
    # The longest a command waits because its provider said to (Retry-After, in full: retried
    # sooner, it would only be refused again). One asked to wait longer fails at once, as do
    # the account's next commands while that wait lasts, without calling the provider.
    max_wait_s: float = 600.0
    # How long a provider call in flight when the worker winds down (SIGTERM, partitions taken
    # away) may still take. Waiting out the account's timeout_s (which may be minutes) would
    # outlast the orchestrator's patience (Kubernetes: 30 s, then SIGKILL, nothing committed).
    # A call still unanswered then is cut short and reported outcome_unknown, as the SIGKILL
    # would have left it, and the stop commits what was done.
    stop_grace_s: float = 15.0


class _CutShort(Exception):
    """A provider call was given up unanswered while the worker stopped. `sent`: a send
    request of it had left, unanswered (otherwise the call was still getting ready: a token)."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__()
        self.sent = sent


@dataclass(frozen=True, slots=True)
class _Hold:
    until: float  # time.monotonic()
    refusal: SendError  # the provider's answer that asked for the wait


class Sender:
    def __init__(self, accounts: Accounts, ledger: CompactedTable[LedgerEntry],
                 http: httpx.AsyncClient, *, public_url: str | None,
                 opt_outs: OptOutCheck | None = None, policy: SendPolicy | None = None) -> None:
        self.accounts = accounts
        self.ledger = ledger
        self.http = http
        self.public_url = public_url.rstrip("/") if public_url else None
        self.opt_outs = opt_outs or NoOptOuts()
        self.policy = policy or SendPolicy()
        self._clients: dict[str, OutboundClient] = {}
        # Per account: no send before this (monotonic) time, because the provider said to
        # wait (Retry-After), and the refusal that said so. Every queued command would
        # otherwise meet the ban by itself.
        self._holds: dict[str, _Hold] = {}
        self._rekeyed_accounts: set[str] = set()
        # A provider outage meets every command in flight at each backoff: a line per attempt
        # would be hundreds a second. Once a minute per account and error code, then a count.
        self.retry_log = ThrottledLog(log)

    def client_for(self, account: Account) -> OutboundClient:
        client = self._clients.get(account.name)
        if client is None:
            client = build_client(account.provider, account.outbound, self.http,
                                  SendContext.for_account(account, self.public_url))
            self._clients[account.name] = client
        return client

    def check_outbound(self) -> None:
        """Build every account's client at start: a bad outbound table is reported now rather
        than at its first command, and its secrets are masked in logs from the start."""
        for account in self.accounts:
            if not account.outbound:
                continue  # an account that only receives webhooks
            try:
                self.client_for(account)
            except ValueError as exc:
                log.error("account cannot send: its commands will fail", account=account.name,
                          provider=account.provider, problem=str(exc))

    async def handle(self, record: Record, ctx: Context) -> None:
        if ce_type_of(record.headers) == OPT_OUT_CHANGE_TYPE:
            # In the conversation's partition: every command after it in Kafka sees it.
            try:
                self.opt_outs.remember(record.value)
            except ValueError as exc:
                raise PoisonRecord(f"not an opt-out change: {exc}") from None
            return
        try:
            command = OutboundCommand.from_json(record.value)
        except ValidationError as exc:
            # Not pydantic's errors as they are: each quotes its input, the whole command
            # (text, recipient) for a missing field, and the reason is logged.
            problems = validation_problems(exc, "command", limit=5)
            named_provider, named_account = await self._refuse_invalid(record, problems, ctx)
            raise PoisonRecord(f"not an outbound command: {problems}",
                               provider=named_provider, account=named_account) from None
        account = self.accounts.by_name(command.account)
        if account is not None:
            command = command.addressed(_account_channel(account))
            if command.account != account.name:
                # Its name in another Unicode form (NFD): keys, opt-outs and results name the
                # account as events do, or Omnichat's correlation of results would miss.
                command = command.model_copy(update={"account": account.name})
            canonical = conversation_key(account.provider, account.name, command.to)
            if record.key != canonical:
                await self._rekey(record, canonical, command, account, ctx)
                return
        key, conversation = command.id.encode(), record.key
        entry = self.ledger.get(key)
        if entry is not None and entry.state != "released":
            await self._redelivered(command, conversation, entry, ctx)
            return
        if account is None:
            SENDS.labels("", "", "unknown_account").inc()
            await self._finish(ctx, conversation, self._failure(
                command, "", "unknown_account", f"no account named {command.account!r}",
                attempts=0))
            return
        if (command.kind not in REACHES_OPTED_OUT
                and self.opt_outs.is_opted_out(account.name, command.to)):
            SENDS.labels(account.provider, account.name, "opted_out").inc()
            await self._finish(ctx, conversation, self._failure(
                command, account.provider, "opted_out",
                "the recipient opted out of messages from this account", attempts=0))
            return
        try:
            client = self.client_for(account)
        except ValueError as exc:  # OutboundConfigError: names keys, never values
            SENDS.labels(account.provider, account.name, "bad_outbound_config").inc()
            await self._finish(ctx, conversation, self._failure(
                command, account.provider, "bad_outbound_config",
                f"account {account.name} outbound config is invalid: {exc}", attempts=0))
            return
        await self._mark(ctx, key, LedgerEntry(state="pending"))
        try:
            result = await self._send_with_retries(client, command, account, ctx)
        except GiveBack:
            # Every attempt so far was refused before the provider took it: safe to leave
            # to the next sender, which would otherwise find it pending (outcome_unknown).
            await self._mark(ctx, key, LedgerEntry(state="released"))
            raise
        await self._finish(ctx, conversation, result)

    async def _rekey(self, record: Record, conversation: bytes, command: OutboundCommand,
                     account: Account, ctx: Context) -> None:
        """Put a command back on the topic under its conversation's key, unsent. At most once
        rests on one sender handling an id at a time, in its partition's order: copies of an
        id under other keys (none, or another spelling of `to`) could be sent concurrently."""
        await ctx.publish([OutRecord(record.topic, record.value, conversation,
                                     list(record.headers))])
        REKEYED.labels(account.provider, account.name).inc()
        if account.name not in self._rekeyed_accounts:  # once: the producer is the cause
            self._rekeyed_accounts.add(account.name)
            log.warning("command not keyed by its conversation: re-keyed before sending "
                        "(key commands with switchboard.records.command_record)",
                        command=command.id, account=account.name,
                        key_problem=_key_problem(record.key, account))

    async def _refuse_invalid(self, record: Record, problems: str,
                              ctx: Context) -> tuple[str, str]:
        """A command that names its id gets a failed result, so whoever sent it is not left
        waiting (the record itself goes to the dead-letter topic). No ledger mark: the same id,
        corrected, is still sent; an id already handled keeps its one result. Returns the
        provider and account the command names, as far as they can be read."""
        try:
            fields = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            return "", ""
        if not isinstance(fields, dict):
            return "", ""
        command_id, account, to = (fields.get(name) for name in ("id", "account", "to"))
        account = account if isinstance(account, str) else ""
        known = self.accounts.by_name(account)
        provider, account = (known.provider, known.name) if known else ("", account)
        if not isinstance(command_id, str) or not command_id \
                or self.ledger.get(command_id.encode()) is not None:
            return provider, account
        metadata = fields.get("metadata")
        result = OutboundResult(
            command_id=command_id, account=account, provider=provider,
            to=to if isinstance(to, str) else "", status=ResultStatus.FAILED,
            error=ErrorInfo(code="invalid_command", description=problems, permanent=True),
            attempts=0, completed_at=datetime.now(UTC),
            metadata=metadata if isinstance(metadata, dict) and all(
                isinstance(v, str) for v in metadata.values()) else {})
        await ctx.publish([result_record(result, record.key)])
        SENDS.labels(provider, account if known else "", "invalid_command").inc()
        return provider, account

    async def _redelivered(self, command: OutboundCommand, conversation: bytes | None,
                           entry: LedgerEntry, ctx: Context) -> None:
        if entry.result is not None:  # done before: publish the same outcome again
            # The ledger record too: this may be a retry after storing it failed.
            await ctx.publish([_ledger_record(command.id.encode(), entry),
                               result_record(entry.result, conversation)])
            return
        log.warning("command found pending after a restart; not resending", command=command.id,
                    account=command.account)
        account = self.accounts.by_name(command.account)
        provider = account.provider if account else ""
        SENDS.labels(provider, account.name if account else "", "outcome_unknown").inc()
        await self._finish(ctx, conversation, self._failure(
            command, provider, "outcome_unknown",
            "the sender stopped while sending; not resent to avoid a duplicate", attempts=1,
            permanent=False))

    async def _send_with_retries(self, client: OutboundClient, command: OutboundCommand,
                                 account: Account, ctx: Context) -> OutboundResult:
        attempt = 0
        # For this handler's task only: a send still waiting for the rate limit when the
        # worker winds down is then given back unsent.
        WINDING_DOWN.set(ctx.winding_down)
        # And one that waited for the rate limit while another send of its account was told to
        # wait is not made (Held): it waits for the hold, at the top of the loop.
        HELD_FOR.set(functools.partial(self._held_for, account.name))
        while True:
            attempt += 1
            hold = self._holds.get(account.name)
            held_s = hold.until - time.monotonic() if hold is not None else 0.0
            if hold is not None and held_s > self.policy.max_wait_s:
                SENDS.labels(account.provider, account.name, "held").inc()
                return self._waited_too_long(command, account, hold.refusal, held_s,
                                             attempts=attempt - 1)
            if held_s > 0:
                await ctx.wait_to_retry(held_s)
            try:
                receipt = await self._call(client, command, ctx)
            except _CutShort as cut:
                if not cut.sent:  # no message left: the next sender sends it
                    log.info("provider call cut short by the stop before its send request "
                             "left: handed back unsent", command=command.id,
                             account=account.name)
                    raise GiveBack from None
                SENDS.labels(account.provider, account.name, "outcome_unknown").inc()
                log.warning("provider call cut short by the stop: its outcome is unknown",
                            command=command.id, account=account.name)
                return self._failure(
                    command, account.provider, "outcome_unknown",
                    f"the sender stopped while the provider call was in flight, unanswered "
                    f"{self.policy.stop_grace_s:g} s later; not resent to avoid a duplicate "
                    f"(its status events will tell)", attempts=attempt, permanent=False)
            except Stopping:
                raise GiveBack from None  # waited for the rate limit; the provider has nothing
            except Held:
                attempt -= 1  # no call made: the provider is asked once the hold is over
                continue
            except SendError as exc:
                SENDS.labels(account.provider, account.name,
                             "retryable" if exc.retryable else "permanent").inc()
                if not exc.retryable or exc.maybe_sent or attempt >= self.policy.max_attempts:
                    log.warning("send failed", command=command.id, account=account.name,
                                error=_unquoted(exc.description, command), attempts=attempt,
                                maybe_sent=exc.maybe_sent)
                    description = exc.description + (
                        "; the provider may have taken it, so it is not sent again (its "
                        "status events will tell)" if exc.maybe_sent else "")
                    return self._failure(command, account.provider, exc.code or "send_failed",
                                         description,
                                         attempts=attempt if exc.called else attempt - 1,
                                         permanent=not exc.retryable)
                delay = self._delay(attempt, exc.retry_after_s)
                if exc.retry_after_s is not None or exc.throttled:
                    self._hold(account.name, delay, exc, command)
                if delay > self.policy.max_wait_s:
                    return self._waited_too_long(command, account, exc, delay, attempts=attempt)
                # What a send that took long went through, and the refusals its final result
                # does not quote.
                self.retry_log(logging.INFO, "send failed, retrying",
                               {"account": account.name, "code": exc.code},
                               command=command.id, error=_unquoted(exc.description, command),
                               attempt=attempt,
                               retry_in_s=round(delay, 1))
                await ctx.wait_to_retry(delay)
                continue
            except Exception as exc:  # noqa: BLE001 - not a SendError: a bug in the client
                return self._unexpected(command, account, exc, attempts=attempt)
            SENDS.labels(account.provider, account.name, "accepted").inc()
            if log.isEnabledFor(logging.DEBUG):  # a line per message: not built unless shown
                log.debug("send accepted", command=command.id, account=account.name,
                          provider_message_id=receipt.provider_message_id, attempts=attempt)
            return self._accepted(command, account.provider, receipt, attempt)

    async def _call(self, client: OutboundClient, command: OutboundCommand,
                    ctx: Context) -> SendReceipt:
        """The provider call; once the worker winds down, it has `stop_grace_s` more to end
        (_CutShort after that)."""
        progress = SendProgress()
        reset = SEND_PROGRESS.set(progress)  # the call's task takes a copy of the context
        try:
            call = asyncio.ensure_future(client.send(command))
        finally:
            SEND_PROGRESS.reset(reset)
        stopping = asyncio.ensure_future(ctx.winding_down.wait())
        try:
            await asyncio.wait((call, stopping), return_when=asyncio.FIRST_COMPLETED)
            if not call.done():
                await asyncio.wait((call,), timeout=self.policy.stop_grace_s)
            if not call.done():
                raise _CutShort(sent=progress.awaiting_answer)
            return call.result()
        finally:
            stopping.cancel()
            if not call.done():  # cut short, or this handler itself was cancelled
                call.cancel()
                call.add_done_callback(retrieve)

    def _unexpected(self, command: OutboundCommand, account: Account, exc: Exception, *,
                    attempts: int) -> OutboundResult:
        """A provider call that raised what its client does not turn into a SendError (a bug,
        an httpx error no client expects, an answer read wrong). Its request may have reached
        the provider, so it is never sent again: maybe sent, as a stop mid-call leaves it.
        Named by its type only: its text may quote the request (the recipient, the message)."""
        error_type = type(exc).__name__
        SENDS.labels(account.provider, account.name, "error").inc()
        log.error("provider call failed with an unexpected error: its outcome is unknown, "
                  "not resent", command=command.id, account=account.name,
                  error_type=error_type, exception=traceback_without_text(exc))
        return self._failure(
            command, account.provider, "outcome_unknown",
            f"the provider call failed with {error_type}, which the {account.provider} client "
            f"does not expect (a bug: the sender's log has its traceback); the provider may "
            f"have taken it, so it is not sent again (its status events will tell)",
            attempts=attempts, permanent=False)

    def _held_for(self, account: str) -> float:
        """How long the account's sends are still held (0 when they are not)."""
        hold = self._holds.get(account)
        return max(0.0, hold.until - time.monotonic()) if hold is not None else 0.0

    def _hold(self, account: str, delay_s: float, refusal: SendError,
              command: OutboundCommand) -> None:
        """Hold the account's sends for `delay_s`, as the provider asked of `command`'s send."""
        now, held = time.monotonic(), self._holds.get(account)
        if held is None or held.until < now:  # said once per hold, not per held command
            log.warning("provider asked to wait: holding this account's sends",
                        command=command.id, account=account, seconds=round(delay_s, 1))
        if held is None or now + delay_s > held.until:
            self._holds[account] = _Hold(now + delay_s, refusal)

    def _delay(self, attempt: int, hint: float | None) -> float:
        """The backoff, or the provider's Retry-After when longer: `Retry-After: 0` would
        otherwise spend every attempt within milliseconds."""
        backoff = float(min(self.policy.base_delay_s * 2 ** (attempt - 1),
                            self.policy.max_delay_s))
        return backoff if hint is None else max(backoff, hint)

    def _waited_too_long(self, command: OutboundCommand, account: Account, refusal: SendError,
                         wait_s: float, *, attempts: int) -> OutboundResult:
        """The provider asked the account's sends to wait longer than a command is kept:
        failed now (a later retry may work), rather than asked again before its time."""
        log.warning("provider asked to wait longer than a command is kept: not sent",
                    command=command.id, account=account.name, seconds=round(wait_s))
        return self._failure(
            command, account.provider, refusal.code or "send_failed",
            f"{refusal.description}; the provider asked this account's sends to wait "
            f"{wait_s:.0f} s, longer than the sender keeps a command waiting "
            f"({self.policy.max_wait_s:.0f} s): not sent", attempts=attempts, permanent=False)

    async def _mark(self, ctx: Context, key: bytes, entry: LedgerEntry) -> None:
        await ctx.publish([_ledger_record(key, entry)])
        self.ledger.put_local(key, entry)

    async def _finish(self, ctx: Context, conversation: bytes | None,
                      result: OutboundResult) -> None:
        """Record the outcome and publish the result, keyed like the command it answers."""
        state: Literal["sent", "failed"] = (
            "sent" if result.status is ResultStatus.ACCEPTED else "failed")
        entry = LedgerEntry(state=state, result=result)
        # Known before it is stored: if storing fails, the handler's retry finds the outcome
        # and publishes it again, instead of a "pending" that would read as outcome_unknown.
        key = result.command_id.encode()
        self.ledger.put_local(key, entry)
        await ctx.publish([_ledger_record(key, entry), result_record(result, conversation)])

    @staticmethod
    def _accepted(command: OutboundCommand, provider: str, receipt: SendReceipt,
                  attempts: int) -> OutboundResult:
        return OutboundResult(
            command_id=command.id, account=command.account, provider=provider, to=command.to,
            status=ResultStatus.ACCEPTED,
            provider_message_id=_storable(receipt.provider_message_id),
            attempts=attempts, completed_at=datetime.now(UTC), metadata=command.metadata)

    @staticmethod
    def _failure(command: OutboundCommand, provider: str, code: str, description: str, *,
                 attempts: int, permanent: bool = True) -> OutboundResult:
        return OutboundResult(
            command_id=command.id, account=command.account, provider=provider, to=command.to,
            status=ResultStatus.FAILED,
            error=ErrorInfo(code=_storable(code), description=_storable(description),
                            permanent=permanent),
            attempts=attempts, completed_at=datetime.now(UTC), metadata=command.metadata)
