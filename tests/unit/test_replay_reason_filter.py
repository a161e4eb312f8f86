"""`switchboard replay --reason`: after a fix, only the letters that failed for what it fixed
are replayed (the others would fail again, or bots would answer them twice). The filter matches
the reason each letter was kept with, masked, as the line's `letter_reason` prints it; letters
it leaves out are not selected, so they count neither as failing nor as skipped. Kafka is not
needed: the window is a stand-in of letters, and webhooks of a provider that needs no
correlation are normalized without it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from ingest.kept import Selection, read_kept
from ingest.replayer import Outcome
from switchboard.cli import main
from switchboard.records import dead_letter_record, raw_envelope
from switchboard.settings import get_settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def letter_value(dl_id: str, reason: str) -> bytes:
    """A webhook's dead letter, as ingest writes it, holding an Infobip report."""
    body = orjson.dumps({"results": [{
        "messageId": f"m-{dl_id}", "to": "41793026727", "doneAt": "2026-01-01T10:00:00.000+0000",
        "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5,
                   "name": "DELIVERED_TO_HANDSET"}}]})
    envelope = raw_envelope(raw_id=f"raw-{dl_id}", provider="infobip", account="acme",
                            method="POST", path="/webhooks/infobip/acme", query="",
                            content_type="application/json", headers={}, body=body,
                            received_at=NOW)
    return dead_letter_record(
        dl_id=dl_id, stage="normalize", reason=reason, provider="infobip", account="acme",
        time=NOW, payload=envelope).value


@pytest.mark.parametrize(("reasons", "matches"), [
    (frozenset(), True),
    (frozenset({"keyerror"}), True),  # any case
    (frozenset({"'RESULTS'"}), True),
    (frozenset({"timeout", "KeyError"}), True),  # any one of them
    (frozenset({"HTTPStatusError"}), False),
    (frozenset({"KeyError: 'status'"}), False),
])
def test_a_letter_is_selected_when_its_reason_holds_a_given_text(
        reasons: frozenset[str], matches: bool) -> None:
    kept = read_kept("dead-letter", letter_value("dl-1", "KeyError: 'results'"))
    assert Selection(reasons=reasons).matches(kept) is matches


def test_the_reason_is_one_filter_of_those_that_must_all_match() -> None:
    kept = read_kept("dead-letter", letter_value("dl-1", "KeyError: 'results'"))
    assert Selection(reasons=frozenset({"keyerror"}), providers=frozenset({"infobip"})
                     ).matches(kept)
    assert not Selection(reasons=frozenset({"keyerror"}), providers=frozenset({"bird"})
                         ).matches(kept)


def test_what_is_matched_and_printed_is_the_letters_reason_masked() -> None:
    # A letter kept before reasons were masked holds the secret its failure quoted.
    secret = "hunter2-pw"
    old = orjson.loads(letter_value("dl-1", "x"))
    old["reason"] = f"ConnectError: https://ops:{secret}@hooks.test/"
    kept = read_kept("dead-letter", orjson.dumps(old))
    line = orjson.loads(Outcome(kept, "replayable").line())
    assert line["letter_reason"] == kept.reason == "ConnectError: https://ops:***@hooks.test/"
    assert not Selection(reasons=frozenset({secret})).matches(kept)
    # A raw request has no reason; a letter without one (a foreign producer's) still replays.
    assert read_kept("raw", orjson.dumps({"id": "r", "provider": "infobip", "account": "a",
                                          "body": ""})).reason == ""
    del old["reason"]
    assert read_kept("dead-letter", orjson.dumps(old)).reason == ""


def window_of(values: list[bytes]) -> Any:
    """read_window, of these dead letters."""
    async def window(*args: Any, **kwargs: Any) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        now_ms = int(time.time() * 1000)
        for offset, value in enumerate(values):
            yield ConsumerRecord("switchboard.dead-letter.v1", 0, offset, now_ms, 0, None,
                                 value, None, 0, len(value), [])
    return window


@pytest.fixture
def offline_replay(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def reached(*args: Any) -> None:
        pass

    get_settings.cache_clear()
    monkeypatch.setattr("switchboard.cli.replay.reach_kafka", reached)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens there
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("offline_replay")
def test_a_dry_run_lists_only_the_letters_of_the_reason_and_counts_no_other(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("ingest.replay.read_window", window_of([
        letter_value("dl-1", "KeyError: 'results'"),
        letter_value("dl-2", "HTTPStatusError: 503 from the provider"),
        letter_value("dl-3", "keyerror: 'results'"),
    ]))

    # The others are not selected: exit 0, not 3 as for letters that fail or are skipped.
    assert main(["replay", "--dry-run", "--reason", "KEYERROR: 'results'"]) == 0

    out, err = capsys.readouterr()
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [(line["id"], line["outcome"], line["letter_reason"]) for line in lines] == [
        ("dl-1", "replayable", "KeyError: 'results'"),
        ("dl-3", "replayable", "keyerror: 'results'")]
    assert "would replay 2 of 2 (2 records); 0 still fail, 0 skipped" in err


@pytest.mark.usefixtures("offline_replay")
def test_a_reason_no_letter_holds_is_said_as_other_filters_are(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("ingest.replay.read_window",
                        window_of([letter_value("dl-1", "KeyError: 'results'")]))

    assert main(["replay", "--dry-run", "--reason", "KeyErorr"]) == 0

    out, err = capsys.readouterr()
    assert out == ""
    assert "no letter matched the filters; the window holds 1 other letters, by stage: " \
           "normalize (1)" in err


@pytest.mark.usefixtures("offline_replay")
@pytest.mark.parametrize(("args", "said"), [
    # Raw requests carry no reason: the filter would leave every one out, "0 of 0", exit 0.
    (["--source", "raw", "--since", "1h", "--reason", "KeyError"],
     "error: --reason is for dead letters; a raw request was kept with no reason\n"),
    # `--reason "$WHY"` with the variable unset: every letter of the window, not a filter.
    (["--reason", "KeyError", "--reason", ""],
     "error: --reason '' is blank, and nearly every reason holds that; give a text the "
     "reasons to replay hold\n"),
    (["--reason", "  "], "error: --reason '  ' is blank"),
])
def test_a_reason_that_cannot_select_is_refused_in_one_line(
        capsys: pytest.CaptureFixture[str], args: list[str], said: str) -> None:
    assert main(["replay", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(said) and err.count("\n") == 1
