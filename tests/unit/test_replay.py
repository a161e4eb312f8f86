"""Replay's pure parts: reading kept records back, and giving from a kept webhook exactly the
records ingest gives from the live one (over every provider's fixtures)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from ingest.replay import Kept, Replayer, Selection, Unreplayable, read_kept, record_of, webhook_of
from ingest.stored import event_records
from normalizers import normalize
from normalizers.registry import echoes_correlation
from switchboard.cli.replay import parse_when
from switchboard.records import raw_envelope
from tests.fixtures import Fixture, load_fixtures

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# Reports of providers that need correlating look results up in Kafka: the integration tests.
FIXTURES = [f for f in load_fixtures() if echoes_correlation(f.provider)]


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", NOW - timedelta(minutes=30)),
    ("2h", NOW - timedelta(hours=2)),
    ("7d", NOW - timedelta(days=7)),
    ("45s", NOW - timedelta(seconds=45)),
    ("2026-11-20T08:00:00Z", datetime(2026, 11, 20, 8, tzinfo=UTC)),
    ("2026-11-20T08:00:00+01:00", datetime(2026, 11, 20, 7, tzinfo=UTC)),
    ("2026-11-20 08:00", datetime(2026, 11, 20, 8, tzinfo=UTC)),  # no zone: UTC
])
def test_when_is_a_span_before_now_or_a_time(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2w", "-3h", "2026-13-01"])
def test_a_time_that_is_neither_says_which_forms_are(text: str) -> None:
    with pytest.raises(ValueError, match="30m, 2h or 7d"):
        parse_when(text, NOW)


def envelope_of(fixture: Fixture) -> dict[str, Any]:
    request = fixture.request(raw_id=f"raw-{fixture.name}")
    return raw_envelope(raw_id=request.raw_id, provider=request.provider,
                        account=request.account, method=request.method, path="/webhooks",
                        query=request.query, content_type=request.content_type,
                        headers=request.headers, body=request.body,
                        received_at=request.received_at)


def letter(payload: dict[str, Any], stage: str = "normalize", **fields: Any) -> dict[str, Any]:
    return {"id": "dl-1", "stage": stage, "reason": "why", "provider": "infobip",
            "account": "acme", "time": NOW.isoformat(), "payload": payload, **fields}


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.id)
async def test_a_kept_webhook_gives_what_the_live_one_gives(fixture: Fixture) -> None:
    kept = read_kept("dead-letter", orjson.dumps(letter(envelope_of(fixture))))
    outcome = await Replayer("unused:9092", 0).outcome(kept)
    if "error" in fixture.spec:
        assert outcome.outcome == "failing"
        assert fixture.spec["error"] in outcome.reason
        assert outcome.records == []
        return
    live = fixture.request(raw_id=f"raw-{fixture.name}")
    expected = event_records(normalize(live), len(live.body))
    assert outcome.outcome == "replayed", outcome.reason
    assert outcome.records == expected  # topic, key, value (ids, raw_id) and headers


def test_a_raw_record_is_read_as_its_own_letter() -> None:
    envelope = envelope_of(FIXTURES[0])
    kept = read_kept("raw", orjson.dumps(envelope))
    assert kept == Kept(envelope["id"], "raw", envelope["provider"], envelope["account"],
                        envelope)


def test_a_body_kept_in_base64_comes_back_byte_exact() -> None:
    body = b"\xff\xfe not UTF-8"
    envelope = raw_envelope(raw_id="r", provider="bird", account="a", method="POST", path="/",
                            query="", content_type="text/plain", headers={}, body=body,
                            received_at=NOW)
    assert envelope["body_encoding"] == "base64"
    assert webhook_of(envelope).body == body


@pytest.mark.parametrize(("value", "reason"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (orjson.dumps({"id": "x", "stage": "normalize", "payload": {}}), "account is missing"),
    (orjson.dumps({**letter({}), "payload": "text"}), "no payload"),
])
def test_an_unreadable_letter_says_why(value: bytes, reason: str) -> None:
    with pytest.raises(Unreplayable, match=reason):
        read_kept("dead-letter", value)


async def test_a_letter_that_holds_no_whole_request_is_skipped() -> None:
    envelope = envelope_of(FIXTURES[0])
    del envelope["received_at"]
    outcome = await Replayer("unused:9092", 0).outcome(read_kept(
        "dead-letter", orjson.dumps(letter(envelope))))
    assert (outcome.outcome, outcome.records) == ("skipped", [])
    assert "not a whole webhook request (KeyError" in outcome.reason


async def test_a_stage_replay_knows_nothing_of_is_skipped() -> None:
    kept = read_kept("dead-letter", orjson.dumps(letter({}, stage="ingest-v9")))
    outcome = await Replayer("unused:9092", 0).outcome(kept)
    assert (outcome.outcome, outcome.reason) == ("skipped", "no replay for stage 'ingest-v9'")


async def test_a_webhook_in_a_format_ingest_refuses_still_fails() -> None:
    envelope = {**envelope_of(FIXTURES[0]), "content_type": "application/pdf"}
    outcome = await Replayer("unused:9092", 0).outcome(read_kept(
        "dead-letter", orjson.dumps(letter(envelope))))
    assert outcome.outcome == "failing"
    assert "content type 'application/pdf' is not accepted" in outcome.reason


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_workers_letter_gives_back_its_record_as_it_was() -> None:
    payload = {"topic": "switchboard.outbound.v1", "partition": 2, "offset": 7, "key": "k|a|c",
               "value_b64": _b64(b'{"x":1}'), "attempts": 3, "worker": "sender",
               "headers_b64": [["ce_type", _b64(b"dev.t.v1")], ["raw", _b64(b"\x00\xff")]]}
    record = record_of(payload)
    assert (record.topic, record.key, record.value) == (
        "switchboard.outbound.v1", b"k|a|c", b'{"x":1}')
    assert record.headers == [("ce_type", b"dev.t.v1"), ("raw", b"\x00\xff")]


@pytest.mark.parametrize(("change", "reason"), [
    ({"headers_b64": None}, "kept without its headers"),
    ({"value_b64": "%%%"}, "not a whole record"),
    ({"topic": None}, "names no topic"),
])
def test_a_workers_letter_that_cannot_be_put_back_says_why(change: dict[str, Any],
                                                           reason: str) -> None:
    payload: dict[str, Any] = {"topic": "t", "key": None, "value_b64": _b64(b"v"),
                               "headers_b64": []}
    payload.update(change)
    if change.get("headers_b64", "") is None:  # kept by a version that had no such field
        del payload["headers_b64"]
    with pytest.raises(Unreplayable, match=reason):
        record_of(payload)


@pytest.mark.parametrize(("selection", "matches"), [
    (Selection(), True),
    (Selection(providers=frozenset({"infobip"})), True),
    (Selection(providers=frozenset({"bird"})), False),
    (Selection(accounts=frozenset({"acme", "other"})), True),
    (Selection(stages=frozenset({"worker:sender"})), False),
    (Selection(ids=frozenset({"dl-1"}), stages=frozenset({"normalize"})), True),
    (Selection(ids=frozenset({"dl-1"}), accounts=frozenset({"other"})), False),
])
def test_every_filter_given_must_match(selection: Selection, matches: bool) -> None:
    kept = read_kept("dead-letter", orjson.dumps(letter({})))
    assert selection.matches(kept) is matches
