"""The handler every bot worker shares: decode, compliance first, then the bot's own answer.

Bots never call providers: they publish outbound commands (and opt-out records), and the
sender does the rest.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from prometheus_client import Counter
from pydantic import ValidationError

from consumers.bots.decide import (
    compliance,
    keyword_reply,
    provider_opt_out,
    should_answer,
    split_first_word,
    template_values,
)
from consumers.bots.optouts import OptOutList, opt_out_records
from consumers.bots.rules import AccountRules, CompiledAccount, RulesError, RuleSet, load_rules
from consumers.bots.sdk import BotFunction, Reply, as_replies, reply_command
from consumers.handling import Context, MustNotSkip, PoisonRecord, Record
from switchboard.events import EventType, MessageEvent
from switchboard.logs import get_logger
from switchboard.producer import PublishError
from switchboard.records import OutRecord, command_record

log = get_logger(__name__)
# Label values are bounded: accounts come from the accounts file, purposes from the rules.
REPLIES = Counter("switchboard_bot_replies_total", "Replies the bots published, by purpose "
                  "(help, opt-out, opt-in, rule-N, fallback, auto-reply, reply-N)",
                  ["worker", "account", "purpose"])
OPT_OUT_CHANGES = Counter("switchboard_bot_opt_out_changes_total",
                          "Opt-out list changes the bots made, by keyword or provider signal",
                          ["worker", "account", "change", "source"])
NOT_ANSWERED = Counter("switchboard_bot_opted_out_messages_total",
                       "Messages from opted-out contacts, left unanswered", ["worker", "account"])
RELOAD_FAILURES = Counter("switchboard_bot_rules_reload_failures_total",
                          "Changed rules files refused (the previous rules stay)")
DEFAULT_ACCOUNT = CompiledAccount("*", AccountRules())  # compliance is on without any rules
Answer = Callable[[MessageEvent, CompiledAccount], Awaitable[list[tuple[Reply, str]]]]


class RulesSource:
    """The current rules; reloaded when the file changes or on SIGHUP, kept if the new is bad."""

    def __init__(self, path: Path | None, check_every_s: float = 2.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self.current = load_rules(path) if path else RuleSet({}, "<none>")
        self._mtime = self._stat()
        self._checked = time.monotonic()
        self._forced = False

    async def watch(self) -> None:
        """Check for changes while no message comes either, so a reload (or a bad edit) is
        logged when it happens, not at the next message."""
        while True:
            await asyncio.sleep(self.check_every_s)
            self.maybe_reload()

    def install_sighup(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def request_reload(self) -> None:
        self._forced = True

    def _stat(self) -> float | None:
        try:
            return os.stat(self.path).st_mtime if self.path else None
        except OSError:
            return None

    def rules_for(self, account: str) -> CompiledAccount:
        self.maybe_reload()
        return self.current.for_account(account) or DEFAULT_ACCOUNT

    def maybe_reload(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not self._forced and now - self._checked < self.check_every_s:
            return
        self._checked = now
        mtime = self._stat()
        if not self._forced and mtime == self._mtime:
            return
        self._forced = False
        self._mtime = mtime
        try:
            self.current = load_rules(self.path)
            log.info("rules reloaded", file=str(self.path), accounts=len(self.current.accounts))
        except RulesError as exc:
            RELOAD_FAILURES.inc()
            log.error("new rules are invalid; keeping the previous ones", error=str(exc))


class BotHandler:
    def __init__(self, name: str, rules: RulesSource, opt_outs: OptOutList,
                 answer: Answer) -> None:
        self.name = name
        self.rules = rules
        self.opt_outs = opt_outs
        self.answer = answer

    async def handle(self, record: Record, ctx: Context) -> None:
        try:
            event = MessageEvent.from_json(record.value)
        except ValidationError as exc:
            raise PoisonRecord(f"not a message event: {exc.errors()[:2]}") from None
        if event.type is EventType.STATUS:
            await self._provider_signal(event, ctx)
            return
        account = self.rules.rules_for(event.account)
        if not should_answer(event, account):
            return
        assert event.from_ is not None
        records: list[OutRecord] = []
        purposes: list[str] = []
        opted_out: bool | None = None  # the keyword's opt-out change, if any
        decision = compliance(event, account)
        if decision is not None:
            # A change older than the known one (a STOP redelivered after a START) would
            # undo the newer one: not published.
            if decision.opt_out is not None and not self.opt_outs.superseded(
                    event.account, event.from_, event.received_at):
                opted_out = decision.opt_out
                records.extend(opt_out_records(  # the outbound copy precedes the reply
                    event.provider, event.account, event.from_, opted_out,
                    f"keyword:{decision.values.get('keyword')}", at=event.received_at))
            if decision.reply:
                command = reply_command(event, Reply(decision.reply), decision.purpose,
                                        decision.kind)
                records.append(command_record(command, event.provider))
                purposes.append(decision.purpose)
        elif self.opt_outs.is_opted_out(event.account, event.from_):
            NOT_ANSWERED.labels(self.name, event.account).inc()
        else:
            for reply, purpose in await self.answer(event, account):
                command = reply_command(event, reply, f"{self.name}:{purpose}")
                records.append(command_record(command, event.provider))
                purposes.append(purpose)
        await self._publish(ctx, records, compliance=opted_out is not None)
        if opted_out is not None:  # once stored: a failed publish is retried, remembers then
            self.opt_outs.remember(records[0].value)  # the opt-out list record, first
            self._count_change(event.account, opted_out, "keyword")
        for purpose in purposes:
            REPLIES.labels(self.name, event.account, purpose).inc()

    @staticmethod
    async def _publish(ctx: Context, records: Sequence[OutRecord], *, compliance: bool) -> None:
        """An opt-out change that cannot be stored must not be dead-lettered and skipped: the
        contact would go on receiving messages (or stay blocked after START)."""
        try:
            await ctx.publish(records)
        except PublishError as exc:
            if compliance:
                raise MustNotSkip(f"opt-out change not stored: {exc}") from exc
            raise

    def _count_change(self, account: str, opted_out: bool, source: str) -> None:
        OPT_OUT_CHANGES.labels(self.name, account, "opt_out" if opted_out else "opt_in",
                               source).inc()

    async def _provider_signal(self, event: MessageEvent, ctx: Context) -> None:
        at = event.occurred_at or event.received_at  # when the provider saw it, not now
        if provider_opt_out(event) and event.to and not self.opt_outs.superseded(
                event.account, event.to, at):
            change = opt_out_records(
                event.provider, event.account, event.to, True,
                f"provider:{event.provider}:{event.error and event.error.code}", at=at)
            await self._publish(ctx, change, compliance=True)
            self.opt_outs.remember(change[0].value)
            self._count_change(event.account, True, "provider")


async def keywords_answer(event: MessageEvent, account: CompiledAccount
                          ) -> list[tuple[Reply, str]]:
    decision = keyword_reply(event, account)
    return [(Reply(decision.reply), decision.purpose)] if decision and decision.reply else []


class AutoReply:
    """At most one auto-reply per contact per cooldown window (bounded memory).

    The window starts when the reply is made, before it is published: the message that
    started it gets its reply again when handled again (a failed publish retried, a
    redelivery), with the same command id, so it is sent once and not lost."""

    def __init__(self, max_contacts: int = 100_000) -> None:
        self.max_contacts = max_contacts
        self._last: OrderedDict[tuple[str, str], tuple[float, uuid.UUID]] = OrderedDict()

    async def __call__(self, event: MessageEvent, account: CompiledAccount
                       ) -> list[tuple[Reply, str]]:
        config = account.config.auto_reply
        if config is None or account.auto_reply is None or event.from_ is None:
            return []
        key = (event.account, event.from_)
        now = time.monotonic()
        last = self._last.get(key)
        again = last is not None and last[1] == event.id
        if last is not None and not again and now - last[0] < config.cooldown_s:
            return []
        values = template_values(event, *split_first_word(event.text))  # every field documented
        text = account.auto_reply.render(values).strip()
        if not text:  # nothing to say (a "{rest}" with no rest): as a keyword rule, no reply;
            return []  # a command without text would be retried, then dead-lettered
        if not again:
            self._last[key] = (now, event.id)
        self._last.move_to_end(key)
        while len(self._last) > self.max_contacts:
            self._last.popitem(last=False)
        return [(Reply(text), "auto-reply")]


def custom_answer(bot: BotFunction) -> Answer:
    async def answer(event: MessageEvent, account: CompiledAccount) -> list[tuple[Reply, str]]:
        return [(reply, f"reply-{n}") for n, reply in enumerate(as_replies(await bot(event)))]

    return answer
