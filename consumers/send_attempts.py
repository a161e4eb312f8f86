"""One command's provider calls (Sender's part): retried with backoff, held while the
provider asked the account's sends to wait, and cut short when the worker stops. What the
calls ended in comes back as the command's result; the ledger and the results' publishing
are the sender's marks (consumers.send_marks)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter

from consumers.handling import Context, GiveBack
from consumers.outbound import SendError, SendReceipt
from consumers.outbound.base import OutboundClient
from consumers.outbound.limits import (
    HELD_FOR,
    SEND_PROGRESS,
    WINDING_DOWN,
    Held,
    SendProgress,
    Stopping,
)
from consumers.send_results import accepted_result, failed_result
from consumers.sender_metrics import SENDS
from consumers.unquoted import unquoted
from switchboard.accounts import Account
from switchboard.commands import OutboundCommand, OutboundResult
from switchboard.failure_text import traceback_without_text
from switchboard.futures import retrieve
from switchboard.logs import get_logger
from switchboard.producer import PublishError
from switchboard.throttle import ThrottledLog

log = get_logger("consumers.sender")  # the sender's lines, under the logger they always had

# Marks the command in the ledger: `pending` while a call may be out, `released` while it
# waits with nothing at the provider. Writes only a change (SendMarks._marks makes it).
Mark = Callable[[Literal["pending", "released"]], Awaitable[None]]


@dataclass
class SendPolicy:
    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0  # of the backoff; a provider's Retry-After may be longer
    # The longest a command waits because its provider said to (Retry-After, in full: retried
    # sooner, it would only be refused again). One asked to wait longer fails at once, as do
    # the account's next commands while that wait lasts, without calling the provider.
    max_wait_s: float = 600.0
    # The longest an account's sends are held because its provider said to wait: a wait asked
    # for longer (a day's quota spent; a year from a proxy gone wrong) has the provider asked
    # again after this, once, by the account's next command (refused, it holds them again). Held
    # for as long as asked, an absurd Retry-After stopped the account's sends until a restart,
    # and a quota raised meanwhile (a plan upgraded) was not noticed for the rest of the day.
    max_hold_s: float = 3600.0
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


@dataclass(slots=True)
class _Count:
    """One command's attempts, each counted once, as it ends (_Count.ended), in two ways:
    `attempts` for the retry policy (its limit, its backoff) and `calls`, the provider calls
    made, what the result's `attempts` says: an attempt refused before it called (content the
    provider cannot carry; a token request another send made, which failed) is not one. A send
    held back while the provider asked its account to wait (Held) is neither."""

    attempts: int = 0
    calls: int = 0

    def ended(self, *, called: bool) -> None:
        self.attempts += 1
        self.calls += 1 if called else 0


def _called(outcome: SendReceipt | Exception) -> bool:
    """Whether an attempt that ended in `outcome` called the provider. An error no client
    expects may have come after its request left, so it counts as a call."""
    if isinstance(outcome, SendError):
        return outcome.called
    if isinstance(outcome, _CutShort):
        return outcome.sent
    return True


@dataclass(frozen=True, slots=True)
class Ended:
    """What a command's handling ended in: its result, and `count`, the SENDS series the
    sender counts in once Kafka has stored that result, for a command failed without a call
    (`held`, `opted_out`, ...). Counted before, such a command was counted again by the next
    sender when a stop came while Kafka was away (the result unstored, the command
    redelivered). Calls are counted as they end: each was made, whatever becomes of the
    result."""

    result: OutboundResult
    count: Counter | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    until: float  # time.monotonic()
    refusal: SendError  # the provider's answer that asked for the wait


class SendAttempts:
    """Sender's provider calls for one command; the state it reads and keeps is the sender's."""

    policy: SendPolicy
    retry_log: ThrottledLog
    _holds: dict[str, Hold]

    async def _send_with_retries(self, client: OutboundClient, command: OutboundCommand,
                                 account: Account, ctx: Context, mark: Mark) -> Ended:
        """The command's result, and its count if one waits for it (Ended). Its ledger says
        `pending` only while a call may be out: a sender killed while the command waits (a
        hold, a backoff after a refusal the provider did not act on) leaves it `released`, and
        one killed while it waits for the rate limit leaves it unmarked (marked as its request
        leaves, see SendProgress), and the next sender sends it, instead of reporting
        outcome_unknown for a message no provider has."""
        count = _Count()

        async def wait(seconds: float) -> None:
            await mark("released")
            await ctx.wait_to_retry(seconds)

        # For this handler's task only: a send still waiting for the rate limit when the
        # worker winds down is then given back unsent.
        WINDING_DOWN.set(ctx.winding_down)
        # And one that waited for the rate limit while another send of its account was told to
        # wait is not made (Held): it waits for the hold, at the top of the loop.
        HELD_FOR.set(functools.partial(self._held_for, account.name))
        while True:
            hold = self._holds.get(account.name)
            held_s = hold.until - time.monotonic() if hold is not None else 0.0
            if hold is not None and held_s > self.policy.max_wait_s:
                return Ended(self._waited_too_long(command, account, hold.refusal, held_s,
                                                   attempts=count.calls),
                             count=SENDS.labels(account.provider, account.name, "held"))
            if held_s > 0:
                await wait(held_s)
            outcome: SendReceipt | Exception
            try:
                # Marked pending once the rate limit lets its request go (SendProgress).
                outcome = await self._call(client, command, ctx, functools.partial(
                    mark, "pending"))
            except PublishError:
                raise  # the mark not stored (Kafka away), nothing sent: the handler retries
            except Stopping:
                raise GiveBack from None  # waited for the rate limit; the provider has nothing
            except Held:
                continue  # no attempt: the provider is asked once the hold is over
            except Exception as error:  # noqa: BLE001 - every other end is read below
                outcome = error
            count.ended(called=_called(outcome))
            if isinstance(outcome, SendReceipt):
                SENDS.labels(account.provider, account.name, "accepted").inc()
                if log.isEnabledFor(logging.DEBUG):  # a line per message: built when shown
                    log.debug("send accepted", command=command.id, account=account.name,
                              provider_message_id=outcome.provider_message_id,
                              attempts=count.calls)
                return Ended(accepted_result(command, account.provider, outcome, count.calls))
            if isinstance(outcome, _CutShort):
                if not outcome.sent:  # no message left: the next sender sends it
                    log.info("provider call cut short by the stop before its send request "
                             "left: handed back unsent", command=command.id,
                             account=account.name)
                    raise GiveBack from None
                SENDS.labels(account.provider, account.name, "outcome_unknown").inc()
                log.warning("provider call cut short by the stop: its outcome is unknown",
                            command=command.id, account=account.name)
                return Ended(failed_result(
                    command, account.provider, "outcome_unknown",
                    f"the sender stopped while the provider call was in flight, unanswered "
                    f"{self.policy.stop_grace_s:g} s later; not resent to avoid a duplicate "
                    f"(its status events will tell)", attempts=count.calls, permanent=False))
            if not isinstance(outcome, SendError):  # a bug in the client
                return Ended(self._unexpected(command, account, outcome, attempts=count.calls))
            refusal = outcome
            # retryable and permanent are provider calls, what an error rate divides: an
            # attempt failed before any call (content the provider cannot carry; a Ubiqio
            # token request of another send, which that send counts) is not_called.
            SENDS.labels(account.provider, account.name,
                         ("retryable" if refusal.retryable else "permanent") if refusal.called
                         else "not_called").inc()
            if (not refusal.retryable or refusal.maybe_sent
                    or count.attempts >= self.policy.max_attempts):
                log.warning("send failed", command=command.id, account=account.name,
                            error=unquoted(refusal.description, command), attempts=count.calls,
                            maybe_sent=refusal.maybe_sent)
                description = refusal.description + (
                    "; the provider may have taken it, so it is not sent again (its "
                    "status events will tell)" if refusal.maybe_sent else "")
                return Ended(failed_result(command, account.provider,
                                           refusal.code or "send_failed", description,
                                           attempts=count.calls, permanent=refusal.permanent))
            delay = self._delay(count.attempts, refusal.retry_after_s)
            if refusal.retry_after_s is not None or refusal.throttled:
                self._hold(account.name, delay, refusal, command)
            if delay > self.policy.max_wait_s:
                return Ended(self._waited_too_long(command, account, refusal, delay,
                                                   attempts=count.calls))
            # What a send that took long went through, and the refusals its final result
            # does not quote.
            self.retry_log(logging.INFO, "send failed, retrying",
                           {"account": account.name, "code": refusal.code},
                           command=command.id, error=unquoted(refusal.description, command),
                           attempt=count.attempts, retry_in_s=round(delay, 1))
            await wait(delay)

    async def _call(self, client: OutboundClient, command: OutboundCommand, ctx: Context,
                    before_request: Callable[[], Awaitable[None]]) -> SendReceipt:
        """The provider call; once the worker winds down, it has `stop_grace_s` more to end
        (_CutShort after that)."""
        progress = SendProgress(before_request)
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
        return failed_result(
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
        """Hold the account's sends for `delay_s`, as the provider asked of `command`'s send,
        up to the policy's max_hold_s."""
        delay_s = min(delay_s, self.policy.max_hold_s)
        now, held = time.monotonic(), self._holds.get(account)
        if held is None or held.until < now:  # said once per hold, not per held command
            log.warning("provider asked to wait: holding this account's sends",
                        command=command.id, account=account, seconds=round(delay_s, 1))
        if held is None or now + delay_s > held.until:
            self._holds[account] = Hold(now + delay_s, refusal)

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
        return failed_result(
            command, account.provider, refusal.code or "send_failed",
            f"{refusal.description}; the provider asked this account's sends to wait "
            f"{wait_s:.0f} s, longer than the sender keeps a command waiting "
            f"({self.policy.max_wait_s:.0f} s): not sent", attempts=attempts, permanent=False)

