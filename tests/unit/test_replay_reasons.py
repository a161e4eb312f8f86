"""What replay says of letters, from what they hold: the reason it prints for a letter that
still fails is the one its dead letter holds, masked as ingest masks it, so a credential a
payload quotes (a URL's password, a JWT) is on no operator's terminal nor in a file a replay's
output was saved to; and names a letter gives are written escaped, not as terminal controls."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ingest.correlation import CorrelationIndex
from ingest.kept import read_kept
from ingest.normalizing import normalized
from ingest.replayer import Replayer
from normalizers import WebhookRequest
from switchboard.cli.replay import none_selected
from switchboard.records import dead_letter_record, raw_envelope

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class KnowsNothing(CorrelationIndex):
    """Caught up, with no results (replay never asks it here: the letters fail first)."""

    def __init__(self) -> None:
        super().__init__("unused:9092", frozenset(), wait_s=0)
        self.caught_up.set()


@pytest.mark.parametrize(("quoted", "secret"), [
    ("https://ops:hunter2-pw@hooks.example.com/x", "hunter2-pw"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0"),
])
async def test_a_failing_letter_is_reported_with_its_letters_masked_reason(
        quoted: str, secret: str) -> None:
    # Infobip quotes an event type it does not know in its reason.
    body = orjson.dumps({"results": [{"event": quoted, "messageId": "m-1"}]})
    request = WebhookRequest(provider="infobip", account="acme", body=body, received_at=NOW,
                             raw_id="raw-1", content_type="application/json")
    _, failure = normalized(request)
    assert failure is not None and secret in failure[2]  # what the normalizer says
    envelope = raw_envelope(raw_id="raw-1", provider="infobip", account="acme", method="POST",
                            path="/webhooks/infobip/acme", query="",
                            content_type="application/json", headers={}, body=body,
                            received_at=NOW)
    # As ingest keeps it: the reason masked.
    letter = dead_letter_record(dl_id="dl-1", stage="normalize", reason=failure[2],
                                provider="infobip", account="acme", time=NOW, payload=envelope)
    kept_reason = orjson.loads(letter.value)["reason"]

    replayer = Replayer("unused:9092", correlation_lookback_s=0, correlations=KnowsNothing())
    outcome = await replayer.outcome(read_kept("dead-letter", letter.value))
    line = orjson.loads(outcome.line())

    assert line["outcome"] == "failing"
    assert line["reason"] == kept_reason
    assert secret not in outcome.line().decode()


def test_names_from_letters_are_said_escaped_not_as_terminal_controls() -> None:
    # A sender's letter takes its account from the command's ce_source, which the producer of
    # the command wrote: an escape sequence there cleared the operator's screen or retitled it.
    said = none_selected({"worker:sender\x07": 1}, {"\x1b[2J\x1b]0;owned\x07": 1})
    assert said.isprintable()
    assert "by stage: worker:sender\\x07 (1)" in said
    assert "by account: \\x1b[2J\\x1b]0;owned\\x07 (1)" in said
