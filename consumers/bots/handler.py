"""The handler every bot worker shares: decode, compliance first, then the bot's own answer.

Bots never call providers: they publish outbound commands (and opt-out records), and the
sender does the rest.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import Counter
from pydantic import ValidationError

from consumers.bots.compiled import CompiledAccount
from consumers.bots.decide import (
    Decision,
    change_time,
    compliance,
    forget_message,
    has_content,
    keyword_reply,
    provider_opt_out,
    should_answer,
    split_first_word,
    template_values,
)
from consumers.bots.limits import (
    COMPLIANCE_LIMITED,
    LIMITED,
    ComplianceReplyLimit,
    OptInConfirmationLimit,
    ReplyLimit,
)
from consumers.bots.opt_out_change import ChangePlan, already_stored, plan_change
from consumers.bots.optouts import OptOutList, OptOutState, Position, opt_out_records
from consumers.bots.rules_source import RulesSource as RulesSource  # imported from here too
from consumers.bots.sdk import BotFunction, Reply, as_replies, reply_command
from consumers.bots.templates import bounded
from consumers.handling import Context, MustNotSkip, PoisonRecord, Record
from switchboard.events import EventType, MessageEvent
from switchboard.logs import get_logger, masked_contact
from switchboard.producer import PublishError
from switchboard.records import OutRecord, command_record
from switchboard.validation import validation_problems

log = get_logger(__name__)
# Label values are bounded: accounts come from the accounts file, purposes from the rules.
REPLIES = Counter("switchboard_bot_replies_total", "Replies the bots published, by purpose "
                  "(help, opt-out, opt-in, rule-N, fallback, auto-reply, reply-N); made again "
                  "for a message handled again, counted once per process",
                  ["worker", "account", "purpose"])
# Ids a bot has counted, its latest this many: reply ids in REPLIES, opted-out messages' event
# ids in NOT_ANSWERED. A message handled again by the same process (its commit refused, its
# partition back after a rebalance) makes the same replies, same ids, which the sender sends
# once, or is left unanswered again: both were counted again. About 2 MB. Another process (a
# restart, another bot worker) cannot know them: it counts them again.
COUNTED_IDS_KEPT = 10_000
OPT_OUT_CHANGES = Counter("switchboard_bot_opt_out_changes_total",
                          "Opt-out list changes the bots made, by keyword or provider signal",
                          ["worker", "account", "change", "source"])
NOT_ANSWERED = Counter("switchboard_bot_opted_out_messages_total",
                       "Messages from opted-out contacts, left unanswered; a message handled "
                       "again, counted once per process", ["worker", "account"])
Answer = Callable[[MessageEvent, CompiledAccount], Awaitable[list[tuple[Reply, str]]]]


def initialize_metrics(worker: str, accounts: Iterable[str]) -> None:
    """The counters alerts watch, at 0: a labelled counter has no series until its first count,
    which rate() then misses. Not for "*": counts are by the message's account, never "*"."""
    for account in accounts:
        if account != "*":
            for counter in (NOT_ANSWERED, LIMITED, COMPLIANCE_LIMITED):
                counter.labels(worker, account)


class BotHandler:
    def __init__(self, name: str, rules: RulesSource, opt_outs: OptOutList,
                 answer: Answer, accounts: Iterable[str] = ()) -> None:
        self.name = name
        self.rules = rules
        self.opt_outs = opt_outs
        self.answer = answer
        self.limit = ReplyLimit(name)
        self.compliance_limit = ComplianceReplyLimit(name)
        self.opt_in_limit = OptInConfirmationLimit(name)
        self._counted: OrderedDict[str, None] = OrderedDict()  # see COUNTED_IDS_KEPT
        # The accounts file's `accounts` (answered by "*", or by default: compliance answers
        # every account) and the rules', then those a reload names (dropped ones stay).
        initialize_metrics(name, [*accounts, *rules.current.accounts])
        rules.on_reload.append(lambda current: initialize_metrics(name, current.accounts))

    async def handle(self, record: Record, ctx: Context) -> None:
        try:
            event = MessageEvent.from_json(record.value)
        except ValidationError as exc:
            # Not pydantic's errors as they are: each quotes its input, the whole event (the
            # contact's text and number) for a missing field, and the reason is logged.
            raise PoisonRecord(f"not a message event: {validation_problems(exc, 'event', 3)}"
                               ) from None
        if event.type is EventType.STATUS:
            await self._provider_signal(event, ctx)
            return
        account = self.rules.rules_for(event.account)
        if not should_answer(event, account):
            return
        assert event.from_ is not None
        records: list[OutRecord] = []
        replies: list[tuple[str, str]] = []  # (command id, purpose) of each reply made
        opted_out: bool | None = None  # the keyword's opt-out change, if any
        try:
            decision = compliance(event, account)
            if decision is not None:
                position = Position(record.topic, record.partition, record.offset)
                opted_out = self._comply(event, account, decision, records, replies,
                                         position)
            elif self.opt_outs.is_opted_out(event.account, event.from_):
                if self._first_count(str(event.id)):
                    NOT_ANSWERED.labels(self.name, event.account).inc()
            else:
                await self._reply(event, account, records, replies)
        finally:
            forget_message(account)  # decided: kept, it would hold the message (old rules too)
        await self._publish(ctx, records, compliance=opted_out is not None)
        if opted_out is not None:  # once stored: a failed publish is retried, remembers then
            self.opt_outs.remember(records[0].value)  # the opt-out list record, first
            self._count_change(event.account, opted_out, "keyword")
        self._count_replies(event.account, replies)  # once stored: not before the publish

    def _comply(self, event: MessageEvent, account: CompiledAccount, decision: Decision,
                records: list[OutRecord], replies: list[tuple[str, str]],
                position: Position) -> bool | None:
        """Compliance's answer and opt-out change; the change made, if any. `position`: the
        message's record, kept in the change to order the contact's changes of one time."""
        assert event.from_ is not None
        known = self.opt_outs.state(event.account, event.from_)
        made_at = change_time(event)
        plan = plan_change(known, decision.opt_out, made_at, position)
        if known is not None and plan.reason is not None:
            self._log_late(event, decision, known, plan)
        opted_out = decision.opt_out if plan.apply else None
        if opted_out is not None:
            records.extend(opt_out_records(  # the outbound copy precedes the reply
                event.provider, event.account, event.from_, opted_out,
                # The word as written ("STOP!!!..."), bounded as a reply's echo is: kept
                # in every sender's and bot's memory with the contact's state.
                f"{decision.source}:{bounded(str(decision.values.get('keyword')))}",
                at=plan.at, made_at=made_at, position=position))
        # An opt-out is always confirmed (carriers and the law want each confirmed), an opt-in
        # up to a limit of its own (limits.py: two bots' confirmations opting each other out
        # and in looped); the rest are what two auto-responders would trade without end. Its
        # change is published either way.
        change = opted_out if plan.flips else None
        if plan.confirm and decision.reply and self._admitted(event, account, change):
            command = reply_command(event, Reply(decision.reply), decision.purpose,
                                    decision.kind)
            records.append(command_record(command, event.provider))
            replies.append((command.id, decision.purpose))
        return opted_out

    def _log_late(self, event: MessageEvent, decision: Decision, known: OptOutState,
                  plan: ChangePlan) -> None:
        """A change older than the contact's known state, applied (a STOP over an opt-in they
        did not make, or of the time of theirs: which one, by its source) or dropped (which
        change)."""
        assert event.from_ is not None
        names = {"worker": self.name, "account": event.account,
                 "contact": masked_contact(event.from_), "event_id": str(event.id)}
        if plan.apply:
            log.info(plan.reason, **names, opt_in_source=known.source[:40])
        else:
            log.info(plan.reason, **names, change=decision.purpose)

    def _admitted(self, event: MessageEvent, account: CompiledAccount,
                  change: bool | None) -> bool:
        """Whether to make a compliance reply; `change`: the opt-out change it confirms."""
        if change is False:
            # Also noted (not counted) in the other limit, as an opt-out is: handled again
            # once applied, a repeat, it is made again (same id), not counted as new.
            return self.opt_in_limit.admit(event, account, 1) and \
                self.compliance_limit.admit(event, account, 1, always=True)
        return self.compliance_limit.admit(event, account, 1, always=change is True)

    async def _reply(self, event: MessageEvent, account: CompiledAccount,
                     records: list[OutRecord], replies: list[tuple[str, str]]) -> None:
        """The bot's own answer, within the reply limit."""
        answers = await self.answer(event, account)
        if answers and not self.limit.admit(event, account, len(answers)):
            answers = []
        elif answers and isinstance(self.answer, AutoReply):
            self.answer.made(event)  # not before: a reply held back starts no cooldown
        for n, (reply, purpose) in enumerate(answers):
            # The id by the reply's place, not its rule: after a rules reload a redelivered
            # message may match another rule, and must not be answered twice.
            command = reply_command(event, reply, f"{self.name}:{purpose}",
                                    slot=f"{self.name}:reply-{n}")
            records.append(command_record(command, event.provider))
            replies.append((command.id, purpose))

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

    def _count_replies(self, account: str, replies: Sequence[tuple[str, str]]) -> None:
        """REPLIES, each reply id once in this process (COUNTED_IDS_KEPT): under the
        purpose it was first made for (a rules reload may give it another, same id)."""
        for command_id, purpose in replies:
            if self._first_count(command_id):
                REPLIES.labels(self.name, account, purpose).inc()

    def _first_count(self, counted_id: str) -> bool:
        """Whether `counted_id` (a reply's command id, an opted-out message's event id) is
        counted for the first time in this process; it is remembered either way."""
        if counted_id in self._counted:
            self._counted.move_to_end(counted_id)
            return False
        self._counted[counted_id] = None
        while len(self._counted) > COUNTED_IDS_KEPT:
            self._counted.popitem(last=False)
        return True

    def _count_change(self, account: str, opted_out: bool, source: str) -> None:
        OPT_OUT_CHANGES.labels(self.name, account, "opt_out" if opted_out else "opt_in",
                               source).inc()

    async def _provider_signal(self, event: MessageEvent, ctx: Context) -> None:
        at = change_time(event)  # when the provider saw it, not now
        if not (provider_opt_out(event) and event.to):
            return
        known = self.opt_outs.state(event.account, event.to)
        # Older than the known state, it would undo it. The same opt-out known (stored by
        # another bot worker, as each handles every report, or by this one before a
        # redelivery): written again, it could land after the contact's next START.
        if (known is not None and known.at > at) or already_stored(known, True, at):
            return
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

    The window starts when the reply is made (made(), once the reply limit admitted it: one
    held back was never sent, and must not keep the next allowed one back), before it is
    published: the message that started it gets its reply again when handled again (a failed
    publish retried, a redelivery), with the same command id, so it is sent once and not
    lost."""

    def __init__(self, max_contacts: int = 100_000) -> None:
        self.max_contacts = max_contacts
        self._last: OrderedDict[tuple[str, str], tuple[float, uuid.UUID]] = OrderedDict()

    async def __call__(self, event: MessageEvent, account: CompiledAccount
                       ) -> list[tuple[Reply, str]]:
        config = account.config.auto_reply
        if config is None or account.auto_reply is None or event.from_ is None:
            return []
        if not has_content(event):  # as the fallback: a paid SMS answering nothing
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
        return [(Reply(text), "auto-reply")]

    def made(self, event: MessageEvent) -> None:
        """The reply to `event` is made: its contact's window starts now."""
        assert event.from_ is not None
        key = (event.account, event.from_)
        last = self._last.get(key)
        if last is None or last[1] != event.id:  # made again (a retry): the window stands
            self._last[key] = (time.monotonic(), event.id)
        self._last.move_to_end(key)
        while len(self._last) > self.max_contacts:
            self._last.popitem(last=False)


def custom_answer(bot: BotFunction) -> Answer:
    async def answer(event: MessageEvent, account: CompiledAccount) -> list[tuple[Reply, str]]:
        return [(reply, f"reply-{n}") for n, reply in enumerate(as_replies(await bot(event)))]

    return answer
