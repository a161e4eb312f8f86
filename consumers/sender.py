"""The sender worker: outbound commands in, provider send API calls out, one result per command.

No command id reaches a provider twice. Before its send request leaves (once the account's rate
limit lets it go) the sender durably marks the command `pending` in the compacted ledger topic,
and after the call `sent` or `failed`
(`released` while it waits to retry after a refusal the provider did not act on: unsent).
A redelivered command (crash, rebalance) finds its mark: `sent`/`failed` republish the same
result; `pending` means the process died mid-call, the provider may or may not have the
message, and the sender reports a failure instead of risking a duplicate (at most once),
unless the mark is one of its own that no call followed (its store timed out, and Kafka stored
it once it answered: Sender._unsent_marks); another sender cannot tell that from a crash.
Past LEDGER_WHOLE_FOR_S the ledger keeps only an id's `sent`/`failed`, not its result: such an
id redelivered (a replay, a group position reset) is counted `already_handled` and nothing is
published.

The ledger's entries are in consumers.ledger; a command's marks in it, and what one found there
means, in consumers.send_marks; a command's provider calls (retries, holds, the stop's grace) in
consumers.send_attempts; the results it publishes in consumers.send_results.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Protocol

import httpx
import orjson
from pydantic import ValidationError

from consumers.handling import Context, GiveBack, PoisonRecord, Record
from consumers.ledger import LedgerEntry
from consumers.outbound import SendContext, build_client
from consumers.outbound.base import OutboundClient, account_channel
from consumers.outbound.limits import ORIGIN_ROOMS, OriginRooms
from consumers.send_attempts import Ended, Hold, SendAttempts, SendPolicy
from consumers.send_marks import SendMarks
from consumers.send_results import failed_result
from consumers.sender_metrics import REKEYED, SENDS, CountedWhenStored
from consumers.table import CompactedTable
from switchboard.accounts import Account, Accounts
from switchboard.commands import (
    REACHES_OPTED_OUT,
    OutboundCommand,
    OutboundResult,
    ResultStatus,
)
from switchboard.events import ErrorInfo
from switchboard.logs import get_logger
from switchboard.records import (
    OPT_OUT_CHANGE_TYPE,
    OutRecord,
    ce_type_of,
    conversation_key,
    result_record,
)
from switchboard.throttle import ThrottledLog
from switchboard.validation import validation_problems

# Every line about a command names it (`command`, its id) and its `account`: a command produced
# without CloudEvents headers has no `event_id` for the runtime to log. Never the message's text.
log = get_logger(__name__)
# Send requests in flight to one provider origin (scheme, host, port), whichever its accounts,
# and the sender's concurrent records (its runtime's max_concurrency) above them. A provider
# that stops answering holds its requests until they time out (timeout_s, 10 s by default):
# with one bound for both, it took every slot within 2 s (20 sends/s) and every other
# provider's sends waited. Per origin, not per account: an outage hits every account at that
# host. One host keeps the 32 in flight it had (the transport's connections to it), and 8
# slots are left to the others.
SENDS_IN_FLIGHT_PER_ORIGIN = 32
SENDER_CONCURRENCY = SENDS_IN_FLIGHT_PER_ORIGIN + 8


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


class Sender(SendMarks, SendAttempts):
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
        self._holds: dict[str, Hold] = {}
        self._rekeyed_accounts: set[str] = set()
        # Per command id: the pending_id of its pending mark that this sender knows stands for
        # no provider call (its store failed, so no call followed; or it was released), until
        # a pending mark of it is stored (a call follows) or it has its outcome. Found again,
        # such a mark is released and the command sent (_unsent_pending).
        self._unsent_marks: OrderedDict[bytes, str] = OrderedDict()
        self._counts = CountedWhenStored()  # commands failed without a call, once stored
        # Shared by every account's client: a provider that hangs holds its own origin's room.
        self.origin_rooms = OriginRooms(SENDS_IN_FLIGHT_PER_ORIGIN)
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
                # Not pydantic's errors as they are: they quote their input, the contact.
                problems = (validation_problems(exc, "change", limit=5)
                            if isinstance(exc, ValidationError) else type(exc).__name__)
                raise PoisonRecord(f"not an opt-out change: {problems}") from None
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
            command = command.addressed(account_channel(account))
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
        unsent = self._unsent_pending(key, entry)
        if unsent is not None:
            log.info("command found pending, marked by this sender as Kafka stopped answering "
                     "and never sent: sending it", command=command.id, account=command.account)
        elif entry is not None and entry.state != "released":
            await self._redelivered(command, conversation, entry, ctx)
            return
        if account is None:
            await self._finish(ctx, conversation, Ended(failed_result(
                command, "", "unknown_account", f"no account named {command.account!r}",
                attempts=0), count=SENDS.labels("", "", "unknown_account")))
            return
        if (command.kind not in REACHES_OPTED_OUT
                and self.opt_outs.is_opted_out(account.name, command.to)):
            await self._finish(ctx, conversation, Ended(failed_result(
                command, account.provider, "opted_out",
                "the recipient opted out of messages from this account", attempts=0),
                count=SENDS.labels(account.provider, account.name, "opted_out")))
            return
        try:
            client = self.client_for(account)
        except ValueError as exc:  # OutboundConfigError: names keys, never values
            await self._finish(ctx, conversation, Ended(failed_result(
                command, account.provider, "bad_outbound_config",
                f"account {account.name} outbound config is invalid: {exc}", attempts=0),
                count=SENDS.labels(account.provider, account.name, "bad_outbound_config")))
            return
        mark = self._marks(ctx, key, unsent)
        if unsent is not None:
            # Released before it waits for the rate limit: a sender killed meanwhile leaves it
            # to the next one unsent, rather than pending (outcome_unknown there).
            await mark("released")
        ORIGIN_ROOMS.set(self.origin_rooms)  # for this handler's task, as its calls copy it
        try:
            ended = await self._send_with_retries(client, command, account, ctx, mark)
        except GiveBack:
            # Every attempt so far was refused before the provider took it: safe to leave
            # to the next sender, which would otherwise find it pending (outcome_unknown).
            await mark("released")
            raise
        await self._finish(ctx, conversation, ended)

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
