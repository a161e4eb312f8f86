"""A command's marks in the sender's ledger (Sender's part): `pending` as each of its send
requests leaves, `released` while it waits, `sent`/`failed` with its result at the end, and what
a mark found there means when the command comes again. Apart from the provider calls
(consumers.send_attempts), which only ask for a mark, as these are what at most once rests on
(consumers.sender says how); the state they read and keep is the sender's."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Literal

from consumers.handling import Context
from consumers.ledger import LedgerEntry, ledger_record
from consumers.send_attempts import Ended, Mark
from consumers.send_results import failed_result
from consumers.sender_metrics import SENDS, CountedWhenStored
from consumers.table import CompactedTable
from switchboard.accounts import Accounts
from switchboard.commands import OutboundCommand, ResultStatus
from switchboard.logs import get_logger
from switchboard.records import result_record

log = get_logger("consumers.sender")  # the sender's lines, under the logger they always had

# Command ids whose unsent pending mark the sender remembers (Sender._unsent_marks): added only
# while Kafka fails to store marks, dropped at the id's outcome. Ones whose partition went to
# another sender stay until this many are held; the oldest forgotten reads as outcome_unknown.
UNSENT_MARKS_KEPT = 10_000


class SendMarks:
    """Sender's ledger marks for its commands; the state it reads and keeps is the sender's."""

    accounts: Accounts
    ledger: CompactedTable[LedgerEntry]
    _unsent_marks: OrderedDict[bytes, str]
    _counts: CountedWhenStored

    def _marks(self, ctx: Context, key: bytes, unsent: str | None) -> Mark:
        """Marks one command `pending` as each request leaves and `released` while it waits,
        each written only as it changes. `unsent`: the pending_id of the pending mark it is
        found with, one of this sender's that no call followed (to release first)."""
        last_mark = "pending" if unsent is not None else "released"  # a release needs a pending
        pending_id = unsent

        async def mark(state: Literal["pending", "released"]) -> None:
            nonlocal last_mark, pending_id
            if state == last_mark:  # a change only
                return
            # Noted before it is stored: `pending` is stored within the provider call, and
            # a stop that cuts the call short while Kafka is slow to answer may leave it
            # stored all the same; the GiveBack that follows then releases it.
            last_mark = state
            if state == "released":
                entry = LedgerEntry(state=state)
                # Known before it is stored: if storing fails (Kafka away), the handler's
                # retry sends it (the provider has nothing), not outcome_unknown; and so does
                # a redelivery here that finds the pending mark this one replaces.
                self.ledger.put_local(key, entry)
                if pending_id is not None:
                    self._note_unsent(key, pending_id)
                await self._mark(ctx, key, entry)
                return
            # The id of an earlier mark not stored in time, if any: that mark may yet be
            # stored after this one is refused (the producer's 'behind a batch Kafka has not
            # answered'), and found then must still read as this sender's, no call made.
            pending_id = self._unsent_marks.get(key) or uuid.uuid4().hex
            try:
                await self._mark(ctx, key, LedgerEntry(state=state, pending_id=pending_id))
            except BaseException:
                self._note_unsent(key, pending_id)  # no call follows; Kafka may store it yet
                raise
            self._unsent_marks.pop(key, None)  # stored: the call follows, and the mark means it

        return mark

    def _note_unsent(self, key: bytes, pending_id: str) -> None:
        self._unsent_marks[key] = pending_id
        self._unsent_marks.move_to_end(key)
        if len(self._unsent_marks) > UNSENT_MARKS_KEPT:  # the oldest: outcome_unknown then
            self._unsent_marks.popitem(last=False)

    def _unsent_pending(self, key: bytes, entry: LedgerEntry | None) -> str | None:
        """The pending_id of `entry` if it is a pending mark of this sender that no provider
        call followed: its store timed out (Kafka paused, slow), and Kafka stored it once it
        answered. Any other pending mark (a call followed it; another sender's; unreadable)
        may stand for a message the provider has."""
        if entry is None or entry.state != "pending" or entry.pending_id is None:
            return None
        return entry.pending_id if self._unsent_marks.get(key) == entry.pending_id else None

    async def _redelivered(self, command: OutboundCommand, conversation: bytes | None,
                           entry: LedgerEntry, ctx: Context) -> None:
        if entry.result is not None:  # done before: publish the same outcome again
            # The ledger record too: this may be a retry after storing it failed.
            await ctx.publish([ledger_record(command.id.encode(), entry),
                               result_record(entry.result, conversation)])
            self._counts.stored(command.id.encode())  # if this sender's store of it failed
            return
        account = self.accounts.by_name(command.account)
        provider = account.provider if account else ""
        if entry.state in ("sent", "failed"):  # archived: its result is no longer held
            # No ledger record either: it would replace the stored one, result and all.
            log.warning("command already handled long ago; not sent again, its result is not "
                        "republished", command=command.id, state=entry.state,
                        account=command.account)
            SENDS.labels(provider, account.name if account else "", "already_handled").inc()
            return
        # Said so on a rebalance too: the member that takes the partition was not restarted.
        log.warning("command found pending: its sender was killed mid-call; not resending",
                    command=command.id, account=command.account)
        await self._finish(ctx, conversation, Ended(failed_result(
            command, provider, "outcome_unknown",
            "the sender stopped while sending; not resent to avoid a duplicate", attempts=1,
            permanent=False), count=SENDS.labels(provider, account.name if account else "",
                                                 "outcome_unknown")))

    async def _mark(self, ctx: Context, key: bytes, entry: LedgerEntry) -> None:
        await ctx.publish([ledger_record(key, entry)])
        self.ledger.put_local(key, entry)

    async def _finish(self, ctx: Context, conversation: bytes | None, ended: Ended) -> None:
        """Record the outcome and publish the result, keyed like the command it answers; then
        count `ended.count` (see CountedWhenStored)."""
        result = ended.result
        state: Literal["sent", "failed"] = (
            "sent" if result.status is ResultStatus.ACCEPTED else "failed")
        entry = LedgerEntry(state=state, result=result)
        # Known before it is stored: if storing fails, the handler's retry finds the outcome
        # and publishes it again, instead of a "pending" that would read as outcome_unknown.
        key = result.command_id.encode()
        self.ledger.put_local(key, entry)
        self._unsent_marks.pop(key, None)
        if ended.count is not None:
            self._counts.due(key, ended.count)
        await ctx.publish([ledger_record(key, entry), result_record(result, conversation)])
        self._counts.stored(key)
