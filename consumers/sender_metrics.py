"""The sender's metrics: counted by its handling of commands (consumers.sender) and by its
provider calls (consumers.send_attempts)."""

from __future__ import annotations

from prometheus_client import Counter

# One per provider call, by how it ended (accepted, retryable, permanent, outcome_unknown, and
# error: one the client does not expect), and one per command failed without a call, by its
# error code (opted_out, unknown_account,
# bad_outbound_config, invalid_command, held; outcome_unknown for one found pending), so an
# account whose commands are all refused still shows. An unknown account is counted under
# account "": its name could be anything, and each would make a time series.
SENDS = Counter("switchboard_sender_sends_total",
                "Provider send attempts, and commands failed without one, by outcome",
                ["provider", "account", "outcome"])
REKEYED = Counter("switchboard_sender_rekeyed_total",
                  "Commands put back on the outbound topic under their conversation's key",
                  ["provider", "account"])
