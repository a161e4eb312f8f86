"""The sender's metrics: counted by its handling of commands (consumers.sender) and by its
provider calls (consumers.send_attempts)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from prometheus_client import Counter

from switchboard.accounts import Account

# One per provider call, by how it ended (accepted, retryable, permanent, outcome_unknown, and
# error: one the client does not expect); one per send attempt its client failed before calling
# (not_called: retryable or permanent, it is no call to the provider, whose error rate the
# others give); and one per command failed without a call, by its error code (opted_out,
# unknown_account, bad_outbound_config, invalid_command, held; outcome_unknown for one found
# pending), so an account whose commands are all refused still shows, once Kafka has stored its
# result (CountedWhenStored); already_handled for one
# whose id the ledger keeps only as handled, long ago (no result). An unknown account is
# counted under account "": its name could be anything, and each would make a time series.
SENDS = Counter("switchboard_sender_sends_total",
                "Provider send calls by outcome, and send attempts and commands failed "
                "without one",
                ["provider", "account", "outcome"])
REKEYED = Counter("switchboard_sender_rekeyed_total",
                  "Commands put back on the outbound topic under their conversation's key",
                  ["provider", "account"])

# Created at 0 when the sender starts (a labelled counter has no series until its first
# increment: an alert had nothing to look at, and rate() missed that first increment), for each
# account it sends for (one with an outbound table), by the outcomes of trying to send: the
# success an error ratio divides by, and the failures an operator is paged for. Not every
# outcome: opted_out is a contact's choice, not trouble; bad_outbound_config is said at start
# (check_outbound); invalid_command names a producer's bug rather than an account's;
# already_handled, commands replayed long after they were handled, sends nothing. not_called
# is alerted: it was counted under permanent and retryable, which alerts on them watched. Seven
# series an account, not twelve: the accounts file may hold hundreds.
_ALERTED = ("accepted", "retryable", "permanent", "error", "outcome_unknown", "held",
            "not_called")


def initialize(accounts: Iterable[Account]) -> None:
    """SENDS at 0 for each sending account's alerted outcomes, and for an unknown account's
    commands (one series: provider and account "", see SENDS)."""
    for account in accounts:
        if account.outbound:
            for outcome in _ALERTED:
                SENDS.labels(account.provider, account.name, outcome)
    SENDS.labels("", "", "unknown_account")


# Command ids whose count waits for their result to be stored (CountedWhenStored): added only
# while Kafka fails to store results; ones whose partition went to another sender (which counts
# them) stay until this many are held, the oldest then forgotten.
UNCOUNTED_KEPT = 10_000


class CountedWhenStored:
    """The count of a command failed without a provider call, made once Kafka has stored its
    result. Counted before publishing, a result Kafka did not take (an outage) and a stop
    meanwhile had the command counted by this sender, then again by the next one it was
    redelivered to (or this one restarted). Kept per command id while its result is unstored:
    the handler's retry, which publishes the result this sender already holds, counts it."""

    def __init__(self, kept: int = UNCOUNTED_KEPT) -> None:
        self.kept = kept
        self._due: OrderedDict[bytes, Counter] = OrderedDict()

    def due(self, key: bytes, count: Counter) -> None:
        """The command `key` is counted in `count` (a SENDS series, there at 0 from now on)
        once its result is stored."""
        self._due[key] = count
        self._due.move_to_end(key)
        if len(self._due) > self.kept:  # handed over long ago: its next sender counted it
            self._due.popitem(last=False)

    def stored(self, key: bytes) -> None:
        """Kafka has stored the command's result: its count, if one is due."""
        count = self._due.pop(key, None)
        if count is not None:
            count.inc()
