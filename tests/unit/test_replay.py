"""Replay's pure parts: reading kept records back, and giving from a kept webhook exactly the
records ingest gives from the live one (over every provider's fixtures)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from ingest.correlation import CorrelationIndex
from ingest.deadlines import BodyDeadlines
from ingest.dedup import RecentRequests
from ingest.kept import Kept, Selection, Unreplayable, read_kept, record_of, webhook_of
from ingest.replayer import Replayer, first_published_ms
from ingest.webhooks import WebhookHandler
from switchboard.accounts import parse_accounts
from switchboard.cli import build_parser
from switchboard.cli.replay import cmd_replay, none_selected
from switchboard.cli.replay_options import parse_stages, parse_when
from switchboard.records import OutRecord, raw_envelope
from switchboard.settings import Settings
from switchboard.topics import DEAD_LETTER, RAW
from tests.fakes import KeepingProducer
from tests.fixtures import Fixture, load_fixtures

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FIXTURES = load_fixtures()
TOKEN = "replay-test-token"


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


class KnowsNothing(CorrelationIndex):
    """Caught up, with no results: a report correlates to nothing, as in a live handler
    that has no index."""

    def __init__(self) -> None:
        super().__init__("unused:9092", frozenset(), wait_s=0)
        self.caught_up.set()


def replayer(**options: Any) -> Replayer:
    return Replayer("unused:9092", correlation_lookback_s=0, correlations=KnowsNothing(),
                    **options)


async def live_records(fixture: Fixture) -> list[OutRecord]:
    """What the live ingest handler publishes for the fixture's webhook."""
    producer = KeepingProducer()
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": fixture.provider, "auth": {"scheme": "token", "secrets": [TOKEN]}}}})
    handler = WebhookHandler(accounts=accounts, producer=producer,  # type: ignore[arg-type]
                             max_body_bytes=4 * 1024 * 1024, recent=RecentRequests(),
                             deadlines=BodyDeadlines(30.0))
    app = Starlette(routes=[Route("/webhooks/{provider}/{account}", handler.handle,
                                  methods=["GET", "POST"])])
    request = fixture.spec["request"]
    query = request.get("query", "")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1") as client:
        await client.request(
            request.get("method", "POST"),
            f"/webhooks/{fixture.provider}/acme" + (f"?{query}" if query else ""),
            content=fixture.body(), headers={
                **request.get("headers", {}), "x-switchboard-token": TOKEN,
                "content-type": request.get("content_type", "application/json")})
    return producer.published


@pytest.mark.parametrize("fixture", load_fixtures(), ids=lambda f: f.id)
async def test_a_kept_webhook_gives_what_the_live_one_gave(fixture: Fixture) -> None:
    published = await live_records(fixture)
    if not published:  # a bare GET that checks the URL: nothing kept, nothing to replay
        assert fixture.spec["request"].get("method") in ("GET", "HEAD")
        return
    [raw] = [r for r in published if r.topic == RAW.name]
    kept = read_kept("raw", raw.value, int(time.time() * 1000))
    outcome = await replayer().outcome(kept)
    letters = [orjson.loads(r.value) for r in published if r.topic == DEAD_LETTER.name]
    if letters:
        assert outcome.outcome == "failing"
        assert outcome.reason == letters[0]["reason"]
        assert outcome.records == []
    else:
        assert outcome.outcome == "replayed", outcome.reason
        # topic, key, value (ids, raw_id, received_at) and headers, in order
        assert outcome.records == [r for r in published if r.topic != RAW.name]


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
    outcome = await replayer().outcome(read_kept(
        "dead-letter", orjson.dumps(letter(envelope))))
    assert (outcome.outcome, outcome.records) == ("skipped", [])
    assert outcome.reason == "its 'received_at' is not text"


async def test_a_stage_replay_knows_nothing_of_is_skipped() -> None:
    kept = read_kept("dead-letter", orjson.dumps(letter({}, stage="ingest-v9")))
    outcome = await replayer().outcome(kept)
    assert (outcome.outcome, outcome.reason) == ("skipped", "no replay for stage 'ingest-v9'")


async def test_a_webhook_in_a_format_ingest_refuses_still_fails() -> None:
    envelope = {**envelope_of(FIXTURES[0]), "content_type": "application/pdf"}
    outcome = await replayer().outcome(read_kept(
        "dead-letter", orjson.dumps(letter(envelope))))
    assert outcome.outcome == "failing"
    assert "content type 'application/pdf' is not accepted" in outcome.reason


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_workers_letter_gives_back_its_record_as_it_was() -> None:
    payload = {"topic": "switchboard.outbound.v1", "partition": 2, "offset": 7,
               "key": "k|a|\ufffd", "key_b64": _b64(b"k|a|\xff"), "value_b64": _b64(b'{"x":1}'),
               "attempts": 3, "worker": "sender",
               "headers_b64": [["ce_type", _b64(b"dev.t.v1")], ["raw", _b64(b"\x00\xff")],
                               ["empty", None]]}
    record = record_of(payload)
    assert (record.topic, record.key, record.value) == (
        "switchboard.outbound.v1", b"k|a|\xff", b'{"x":1}')  # the key exactly, not as shown
    assert record.headers == [("ce_type", b"dev.t.v1"), ("raw", b"\x00\xff"), ("empty", None)]


@pytest.mark.parametrize(("change", "reason"), [
    ({"headers_b64": None}, "kept without its headers"),
    ({"value_b64": "%%%"}, "its value is not base64"),
    ({"value_b64": None}, "its value is not base64"),
    ({"key_b64": 7}, "its key is not base64"),
    ({"topic": None}, "its 'topic' is not text"),
    ({"headers_b64": [[1, "dg=="]]}, "not \\[name, value\\] pairs"),
    ({"headers_b64": [["a", "dg==", "x"]]}, "not \\[name, value\\] pairs"),
    ({"headers_b64": [["a", 5]]}, "its header 'a' is not base64"),
])
def test_a_workers_letter_that_cannot_be_put_back_says_why(change: dict[str, Any],
                                                           reason: str) -> None:
    payload: dict[str, Any] = {"topic": "t", "key_b64": None, "value_b64": _b64(b"v"),
                               "headers_b64": []}
    payload.update(change)
    if change == {"headers_b64": None}:  # kept by a version that had no such field
        del payload["headers_b64"]
    with pytest.raises(Unreplayable, match=reason):
        record_of(payload)


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("body", 12, "its 'body' is not text"),
    ("content_type", None, "its 'content_type' is not text"),
    ("headers", {"a": 1}, "its 'headers' are not text"),
    ("headers", ["a"], "its 'headers' are not text"),
    ("received_at", "yesterday", "its 'received_at' is not a time"),
    ("body_encoding", "base64", "its body is not base64"),  # the body is JSON text, not base64
])
async def test_a_kept_request_with_a_field_of_the_wrong_kind_is_skipped(
        field: str, value: Any, reason: str) -> None:
    envelope = {**envelope_of(FIXTURES[0]), field: value}
    outcome = await replayer().outcome(read_kept("dead-letter", orjson.dumps(letter(envelope))))
    assert (outcome.outcome, outcome.reason) == ("skipped", reason)


async def test_a_record_published_before_is_not_put_back_past_the_senders_memory() -> None:
    now = time.time()
    payload: dict[str, Any] = {"topic": "t", "key_b64": None, "value_b64": _b64(b"v"),
                               "headers_b64": []}
    old = read_kept("dead-letter", orjson.dumps(letter(payload, stage="worker:bot")),
                    int((now - 8 * 86_400) * 1000))
    outcome = await replayer(now=lambda: now).outcome(old)
    assert outcome.outcome == "skipped"
    assert outcome.reason.startswith("published over 7 days ago: the sender no longer remembers")
    raw = read_kept("raw", orjson.dumps(envelope_of(FIXTURES[0])), int((now - 8 * 86_400) * 1000))
    assert (await replayer(now=lambda: now).outcome(raw)).outcome == "skipped"
    allowed = await replayer(now=lambda: now, include_old=True).outcome(raw)
    assert allowed.outcome == "replayed"


@pytest.mark.parametrize(("event_days", "outcome"), [(8, "skipped"), (6, "replayed")])
async def test_a_workers_record_is_as_old_as_its_event_not_its_letter(
        event_days: int, outcome: str) -> None:
    # A worker that lagged (stopped for days) gave up on an event the other bots had answered
    # as it was published: counted from its letter, it was put back and answered twice, past
    # the sender's memory.
    now = time.time()
    event_time = datetime.fromtimestamp(now - event_days * 86_400, UTC)
    ce_time = event_time.isoformat().replace("+00:00", "Z").encode()
    payload: dict[str, Any] = {"topic": "t", "key_b64": None, "value_b64": _b64(b"v"),
                               "headers_b64": [["ce_type", _b64(b"t")],
                                               ["ce_time", _b64(ce_time)]]}
    kept = read_kept("dead-letter", orjson.dumps(letter(payload, stage="worker:bot")),
                     int((now - 3600) * 1000))
    assert (await TopicsThere(now=lambda: now).outcome(kept)).outcome == outcome
    assert first_published_ms(kept, record_of(kept.payload)) == int(event_time.timestamp() * 1000)


@pytest.mark.parametrize("ce_time", [None, b"not a time", b"\xff",
                                     b"2999-01-01T00:00:00Z"])  # later than its letter
def test_a_record_without_an_earlier_time_is_as_old_as_its_letter(ce_time: bytes | None) -> None:
    headers = [] if ce_time is None else [["ce_time", _b64(ce_time)]]
    payload = {"topic": "t", "key_b64": None, "value_b64": _b64(b"v"), "headers_b64": headers}
    kept = read_kept("dead-letter", orjson.dumps(letter(payload, stage="worker:bot")),
                     1_764_000_000_000)
    assert first_published_ms(kept, record_of(kept.payload)) == 1_764_000_000_000


class TopicsThere(Replayer):
    """Every topic a record goes back to exists, without asking Kafka."""

    def __init__(self, **options: Any) -> None:
        super().__init__("unused:9092", correlation_lookback_s=0, correlations=KnowsNothing(),
                         **options)

    async def _exists(self, topic: str) -> bool:
        return True


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


@pytest.mark.parametrize(("args", "reason"), [
    (["--since", "yesterday"], "neither a time like"),
    (["--since", "999999999d"], "neither a time like"),
    (["--since", "1960-01-01"], "before 1970"),
    (["--since", ""], "'' is neither a time like"),  # e.g. "$SINCE" unset: not the whole topic
    (["--until", "", "--dry-run"], "'' is neither a time like"),
    (["--since", "1h", "--until", "2h"], "is after --until"),
    (["--source", "raw"], "--source raw needs --since"),
    (["--source", "raw", "--since", "1h", "--stage", "sender"], "--stage is for dead letters"),
    # A misspelt stage matched no letter: "0 of 0" and exit 0, the letters left unreplayed.
    (["--stage", "normalise"], "unknown --stage 'normalise': a stage is normalize or a "
                               "worker's name (worker: before it may be left out): sender, "
                               "keywords, autoreply, or bot-<module>-<function>"),
    (["--stage", "sender", "--stage", "worker:sendr"], "unknown --stage 'worker:sendr'"),
    (["--stage", "worker:normalize"], "unknown --stage 'worker:normalize'"),
    (["--stage", "bot"], "unknown --stage 'bot'"),
    (["--stage", "raw"], "unknown --stage 'raw'"),
])
def test_a_window_that_cannot_be_read_is_refused_before_kafka_is_asked(
        args: list[str], reason: str) -> None:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "switchboard.cli", "replay", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and reason in done.stderr
    assert done.stdout == ""


def test_stages_are_named_as_letters_name_them() -> None:
    assert parse_stages(["normalize", "sender", "worker:keywords", "autoreply",
                         "bot-bots.shop-answer", "worker:bot-echo-reply"]) == {
        "normalize", "worker:sender", "worker:keywords", "worker:autoreply",
        "worker:bot-bots.shop-answer", "worker:bot-echo-reply"}
    assert parse_stages([]) == frozenset()


def test_a_misspelt_provider_is_refused_not_an_empty_replay(
        capsys: pytest.CaptureFixture[str]) -> None:
    # `--provider infobip-omni` matched no letter: "0 of 0" and exit 0, read as "nothing
    # was lost" while the account's letters stayed unreplayed.
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["replay", "--provider", "infobip-omni"])
    assert exited.value.code == 2
    assert "invalid choice: 'infobip-omni'" in capsys.readouterr().err


@pytest.mark.parametrize(("dry_run", "says"), [
    (False, "interrupted: the 1 letters reported above are stored; those being published"),
    (True, "interrupted after 1 letters; nothing was published"),
])
def test_ctrl_c_says_what_is_stored_instead_of_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dry_run: bool,
        says: str) -> None:
    async def interrupted(*args: Any, emit: Callable[[bytes], None], **options: Any) -> None:
        emit(b'{"id": "dl-1", "outcome": "replayed"}')
        raise KeyboardInterrupt  # as a second Ctrl-C, while the first's stop waits on Kafka

    async def reached(*args: Any) -> None:
        pass  # nothing listens at 127.0.0.1:1: the command's first look at Kafka passes

    monkeypatch.setattr("ingest.replay.replay", interrupted)
    monkeypatch.setattr("switchboard.cli.replay.reach_kafka", reached)
    args = build_parser().parse_args(["replay", "--since", "1h", *(["--dry-run"] * dry_run)])
    try:
        code = cmd_replay(args, Settings(kafka_bootstrap_servers="127.0.0.1:1"))
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C left replay as a traceback, saying nothing of what is stored")
    assert code == 130
    out, err = capsys.readouterr()
    assert out.count("\n") == 1
    assert says in err


def test_a_selection_matching_nothing_names_the_window_s_stages_and_accounts() -> None:
    """Replay reads no accounts file: a misspelt --account matched nothing and said only the
    stages, so nothing showed the account names the window does hold."""
    accounts = {f"shop-{n:02d}": 1 for n in range(12)} | {"acme": 5}
    said = none_selected({"normalize": 3, "worker:sender": 14}, accounts)
    assert said == ("no letter matched the filters; the window holds 17 other letters, by "
                    "stage: worker:sender (14), normalize (3); by account: acme (5), "
                    "shop-00 (1), shop-01 (1), shop-02 (1), shop-03 (1), shop-04 (1), "
                    "shop-05 (1), shop-06 (1), shop-07 (1), shop-08 (1) and 3 more")
    assert none_selected({"normalize": 1}, {"": 1}).endswith('by account: "" (1)')
