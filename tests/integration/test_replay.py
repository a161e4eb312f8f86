"""`switchboard replay` against the real broker: a webhook dead-lettered by a normalizer bug
gives its events once the bug is gone, a worker's record goes back on its topic as it was, and
an Omnichat report is correlated through the results already on the topic."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from ingest import normalizing
from normalizers import NormalizeError, WebhookRequest, normalize
from switchboard.clients import KafkaConnection
from switchboard.commands import OutboundResult, ResultStatus
from switchboard.records import (
    conversation_key,
    dead_letter_record,
    raw_envelope,
    result_record,
)
from switchboard.topics import (
    DEAD_LETTER,
    MESSAGE_INBOUND,
    MESSAGE_STATUS,
    RAW,
    TopicSpec,
    ensure_topics,
)
from tests.integration.conftest import IngestServer
from tests.integration.processes import replay, replay_stopped_midway
from tests.integration.runtimes import run_until
from tests.integration.webhooks import basic, infobip_report
from tests.kafka_helpers import TopicWatcher, collect_until, publish, publish_worker_letters

EVENT_TOPICS = (MESSAGE_INBOUND.name, MESSAGE_STATUS.name)


async def test_a_webhook_a_bug_dead_lettered_gives_its_events_once_fixed(
    ingest_server: IngestServer, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def buggy(request: WebhookRequest) -> list[Any]:
        raise NormalizeError("a bug in this version")

    url = ingest_server.url("infobip", "it-infobip")
    message_id = f"replay-{uuid.uuid4()}"
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        monkeypatch.setattr(normalizing, "normalize", buggy)
        kept = await client.post(url, content=infobip_report(message_id, 3), headers=basic())
        monkeypatch.undo()
        # Unreadable with or without the bug: stays a dead letter.
        bad = await client.post(url, content=b'{"results": [', headers=basic())
        found = await watcher.records_since(before)
        assert (kept.status_code, bad.status_code) == (400, 400)
        assert not any(found.get(topic) for topic in EVENT_TOPICS)
        letters = [orjson.loads(r.value) for r in found[DEAD_LETTER.name]]
        ids = [letter["id"] for letter in letters]
        assert letters[0]["reason"] == "a bug in this version"
        raw_id = letters[0]["payload"]["id"]

        dry = await watcher.snapshot()
        code, lines, err = await replay(kafka_bootstrap, "--id", ids[0], "--dry-run")
        assert code == 0, err
        assert [(line["id"], line["outcome"], line["records"], line["topics"])
                for line in lines] == [(ids[0], "replayable", 3, [MESSAGE_STATUS.name])]
        assert await watcher.snapshot() == dry, "a dry run published"

        code, lines, err = await replay(kafka_bootstrap, "--id", ids[0], "--id", ids[1],
                                        "--account", "it-infobip", "--stage", "normalize")
        replayed = await watcher.records_since(dry)

    assert code == 3, err  # one of the two still fails
    assert {line["id"]: line["outcome"] for line in lines} == {
        ids[0]: "replayed", ids[1]: "failing"}
    assert "replayed 1 of 2 (3 records); 1 still fail, 0 skipped" in err
    assert set(replayed) == {MESSAGE_STATUS.name}, "only the events: no raw, no dead letter"
    records = replayed[MESSAGE_STATUS.name]
    events = [orjson.loads(record.value) for record in records]
    # The ids are those the live webhook would have had, so consumers see one event per report.
    live = normalize(WebhookRequest(provider="infobip", account="it-infobip",
                                    body=infobip_report(message_id, 3),
                                    received_at=datetime.now(UTC), raw_id="live"))
    live_by_id = {str(e.id): e for e in live}
    assert sorted(e["id"] for e in events) == sorted(live_by_id)
    assert all(e["raw_id"] == raw_id for e in events)
    for record, event in zip(records, events, strict=True):
        contact = live_by_id[event["id"]].contact
        assert record.key == conversation_key("infobip", "it-infobip", contact)
        headers = dict(record.headers)
        assert headers["ce_id"].decode() == event["id"]
        assert headers["ce_type"] == b"dev.switchboard.message.status.v1"


@pytest.mark.parametrize("prefix", ["", "replay-install."])
async def test_a_record_a_worker_gave_up_on_goes_back_on_its_topic(kafka_bootstrap: str,
                                                                   prefix: str) -> None:
    """With a name prefix, the worker, its dead letter and the replay use the prefixed topics;
    the letter and the output name the topic plainly."""
    kafka = KafkaConnection(kafka_bootstrap, name_prefix=prefix)
    topic = f"test.runtime.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, partitions=3, replication_factor=1,
                        specs=(TopicSpec(topic, "test"), DEAD_LETTER))
    # A stage replay knows: a custom bot's (any other worker name is refused).
    name = f"bot-replay-{uuid.uuid4().hex[:8]}"
    # Kept exactly: a key that is not UTF-8, a binary header, and one without a value.
    key = b"k-\xff"
    headers: list[tuple[str, bytes | None]] = [
        ("ce_type", b"dev.test.thing.v1"), ("binary", b"\x00\xff"), ("empty", None)]
    failed = asyncio.Event()

    async def broken(record: Record, ctx: Context) -> None:
        failed.set()
        raise RuntimeError("a bug in the handler")

    letters_topic = prefix + DEAD_LETTER.name
    async with TopicWatcher(kafka_bootstrap, (letters_topic,)) as letters:
        before = await letters.snapshot()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(prefix + topic, b'{"n": 1}', key=key, headers=headers)
        finally:
            await producer.stop()
        runtime = WorkerRuntime(name=name, kafka=kafka, topics=[topic],
                                handler=broken, group_id=f"g-{name}",
                                retry=RetryPolicy(max_attempts=1, base_delay_s=0.01))
        await run_until(runtime, failed)
        found = await collect_until(letters, before, lambda found: bool(found.get(letters_topic)))
    [letter] = [orjson.loads(r.value) for r in found[letters_topic]]
    assert letter["payload"]["topic"] == topic

    async with TopicWatcher(kafka_bootstrap, (prefix + topic,)) as watcher:
        start = await watcher.snapshot()
        code, lines, err = await replay(kafka_bootstrap, "--stage", name, prefix=prefix)
        back = (await watcher.records_since(start)).get(prefix + topic, [])

    assert code == 0, err
    assert [(line["stage"], line["outcome"], line["topics"]) for line in lines] == [
        (f"worker:{name}", "replayed", [topic])]
    assert [(r.key, r.value, list(r.headers)) for r in back] == [(key, b'{"n": 1}', headers)]


async def test_an_omnichat_report_is_correlated_through_the_results_on_the_topic(
    kafka_bootstrap: str
) -> None:
    account, message_id, command_id = "it-omnichat", f"oc-{uuid.uuid4()}", f"cmd-{uuid.uuid4()}"
    result = OutboundResult(command_id=command_id, account=account, provider="infobip-omnichat",
                            to="user-1", status=ResultStatus.ACCEPTED,
                            provider_message_id=message_id, attempts=1,
                            completed_at=datetime.now(UTC))
    body = orjson.dumps({"results": [{
        "messageId": message_id, "to": "user-1", "integrationType": "FACEBOOK",
        "doneAt": "2026-11-24T09:00:02.500+0000", "messageCount": 1,
        "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5,
                   "name": "DELIVERED_TO_HANDSET"}}]})
    now = datetime.now(UTC)
    envelope = raw_envelope(raw_id=str(uuid.uuid4()), provider="infobip-omnichat",
                            account=account, method="POST", path="/", query="",
                            content_type="application/json", headers={}, body=body,
                            received_at=now)
    # As an older version would have kept it; the result is on its topic before the replay.
    letter_id = str(uuid.uuid4())
    await publish(kafka_bootstrap, [result_record(result), dead_letter_record(
        dl_id=letter_id, stage="normalize", reason="older version", provider="infobip-omnichat",
        account=account, time=now, payload=envelope)])

    async with TopicWatcher(kafka_bootstrap, (MESSAGE_STATUS.name,)) as watcher:
        start = await watcher.snapshot()
        code, lines, err = await replay(kafka_bootstrap, "--id", letter_id)
        events = [orjson.loads(r.value) for r in
                  (await watcher.records_since(start))[MESSAGE_STATUS.name]]

    assert code == 0, err
    assert [(line["outcome"], line["uncorrelated"]) for line in lines] == [("replayed", 0)]
    assert [(e["message_id"], e["correlation_id"]) for e in events] == [(message_id, command_id)]


async def test_replaying_raw_requests_publishes_the_windows_events_again(
    ingest_server: IngestServer, kafka_bootstrap: str
) -> None:
    url = ingest_server.url("infobip", "it-infobip")
    async with TopicWatcher(kafka_bootstrap, (RAW.name, MESSAGE_STATUS.name)) as watcher, \
            httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        answer = await client.post(url, content=infobip_report(f"raw-{uuid.uuid4()}", 2),
                                   headers=basic())
        assert answer.status_code == 200
        first = await watcher.records_since(before)
        [raw] = first[RAW.name]
        raw_id = orjson.loads(raw.value)["id"]

        middle = await watcher.snapshot()
        refused, _, refusal = await replay(kafka_bootstrap, "--source", "raw", since=None)
        code, lines, err = await replay(kafka_bootstrap, "--source", "raw", "--id", raw_id)
        again = await watcher.records_since(middle)

    assert refused == 2 and "--source raw needs --since" in refusal
    assert code == 0, err
    assert [(line["id"], line["stage"], line["records"]) for line in lines] == [
        (raw_id, "raw", 2)]
    assert set(again) == {MESSAGE_STATUS.name}
    assert [r.value for r in again[MESSAGE_STATUS.name]] == [
        r.value for r in first[MESSAGE_STATUS.name]]


async def test_the_window_and_the_filters_bound_what_is_replayed(kafka_bootstrap: str) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    kept_at = datetime.now(UTC)
    envelope = raw_envelope(raw_id=str(uuid.uuid4()), provider="infobip", account=account,
                            method="POST", path="/", query="", content_type="application/json",
                            headers={}, body=infobip_report(f"w-{uuid.uuid4()}"),
                            received_at=kept_at)
    letter_id = str(uuid.uuid4())
    await publish(kafka_bootstrap, [dead_letter_record(
        dl_id=letter_id, stage="normalize", reason="older version", provider="infobip",
        account=account, time=kept_at, payload=envelope)])
    before = (kept_at - timedelta(minutes=5)).isoformat()

    ended_before, lines_before, err_before = await replay(
        kafka_bootstrap, "--id", letter_id, "--until", before)
    other_account, lines_other, _ = await replay(kafka_bootstrap, "--id", letter_id,
                                                 "--account", "someone-else")
    code, lines, err = await replay(kafka_bootstrap, "--account", account, "--dry-run")

    assert ended_before == 3 and lines_before == []  # it was kept after the window
    assert f"not found in the window: {letter_id}" in err_before
    assert other_account == 3 and lines_other == []
    assert code == 0, err
    assert [(line["id"], line["outcome"]) for line in lines] == [(letter_id, "replayable")]


async def test_a_stage_that_matches_no_letter_names_the_stages_the_window_holds(
    kafka_bootstrap: str
) -> None:
    # A custom bot's stage is `worker:bot-<module>-<function>`: `--stage bot-mybot-answer`
    # (its function is `answer_bot`) matched nothing and replay said only "replayed 0 of 0",
    # exit 0, as if there were no letter to replay.
    stage = f"bot-mybot-{uuid.uuid4().hex[:8]}-answer_bot"
    await publish_worker_letters(kafka_bootstrap, "test.unused", stage, 1)

    code, lines, err = await replay(kafka_bootstrap, "--stage", "bot-mybot-answer", "--dry-run")

    assert code == 0 and lines == []
    assert "no letter matched the filters" in err
    assert f"worker:{stage} (1)" in err
    # The accounts too; which ten depends on the other tests' letters in the session's broker.
    assert "; by account: " in err


async def test_a_stopped_replay_reports_every_letter_it_published_and_no_other(
        kafka_bootstrap: str) -> None:
    """SIGTERM mid-window (a supervisor's stop, as Ctrl-C is a user's): the letters being
    published are acknowledged and reported, nothing further is published, and it says so."""
    topic = f"test.replay.stop.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    stage = f"bot-stop-{uuid.uuid4().hex[:8]}"
    letters = 3000
    await publish_worker_letters(kafka_bootstrap, topic, stage, letters)

    async with TopicWatcher(kafka_bootstrap, (topic,)) as watcher:
        start = await watcher.snapshot()
        returncode, out, err = await replay_stopped_midway(kafka_bootstrap, "--since", "10m",
                                                           "--stage", stage)
        back = (await watcher.records_since(start)).get(topic, [])

    lines = [orjson.loads(line) for line in out.splitlines()]
    assert returncode == 128 + signal.SIGTERM, err
    assert 0 < len(lines) < letters
    assert {line["outcome"] for line in lines} == {"replayed"}
    assert len(back) == len(lines), "a letter published without its line, or reported unstored"
    assert "stopped by SIGTERM before the end of the window" in err
