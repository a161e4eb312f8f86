"""A result's `attempts`: the provider calls the sender made for its command, whatever the
attempts that called nothing (a token request made by another send, which failed) in between;
and the retry policy's attempts, of which a send held back (Held) is none."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from consumers.ledger import decode_ledger
from consumers.outbound import SendError, SendReceipt
from consumers.outbound.limits import Held
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.commands import OutboundCommand
from switchboard.topics import OUTBOUND_SENT
from tests.unit.fakes import FakeContext
from tests.unit.senders import ACCOUNTS, command, consumed, results

Outcome = Exception | SendReceipt


def not_called(*, retryable: bool = True) -> SendError:
    """What a send that waited for another's failed token request raises."""
    return SendError("HTTP 503: token endpoint down", retryable=retryable, code="503",
                     called=False)


def refused(*, retryable: bool) -> SendError:
    return SendError("HTTP 503: unavailable" if retryable else "HTTP 400: bad number",
                     retryable=retryable, code="503" if retryable else "400")


class ScriptedClient:
    def __init__(self, outcomes: list[Outcome]) -> None:
        self._outcomes: Iterator[Outcome] = iter(outcomes)

    async def send(self, command: OutboundCommand) -> SendReceipt:
        outcome = next(self._outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class InstantContext(FakeContext):
    async def wait_to_retry(self, delay_s: float) -> None:
        return None


@pytest.mark.parametrize(("outcomes", "status", "attempts"), [
    ([not_called(), SendReceipt("ib-1")], "accepted", 1),
    ([not_called(), not_called(), refused(retryable=False)], "failed", 1),
    ([refused(retryable=True), not_called(retryable=False)], "failed", 1),
    ([not_called()] * 5, "failed", 0),
    ([refused(retryable=True), not_called(), refused(retryable=True), SendReceipt("ib-1")],
     "accepted", 3),
    # Held back while the account waited: asked again after, with every attempt still to come.
    ([Held()] * 4 + [refused(retryable=True)] * 5, "failed", 5),
    # A client's bug may come after its request left: counted as a call.
    ([not_called(), ValueError("a client's bug")], "failed", 1),
], ids=["accepted-after-one", "refused-after-two", "called-then-not", "never-called", "mixed",
        "held-is-no-attempt", "bug-after-not-called"])
async def test_attempts_count_the_provider_calls_made(outcomes: list[Outcome], status: str,
                                                      attempts: int) -> None:
    async with httpx.AsyncClient() as http:
        sender = Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger), http, public_url=None)
        sender._clients["acme"] = ScriptedClient(outcomes)
        ctx = InstantContext()
        await sender.handle(consumed(command()), ctx)
    [result] = results(ctx)
    assert (result["status"], result["attempts"]) == (status, attempts)
