"""From a log line to `switchboard replay`, against the real broker: the `dead_letter_id` of
ingest's "webhook kept as dead letter" line and of a worker's "record dead-lettered" line is
what `replay --id` takes, and it replays that letter alone. Before, neither line named the
letter: ingest's gave the raw request's id, a worker's where the record was in Kafka."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from ingest import normalizing
from normalizers import NormalizeError, WebhookRequest
from switchboard.topics import DEAD_LETTER, MESSAGE_STATUS, TopicSpec, ensure_topics
from tests.integration.conftest import IngestServer
from tests.integration.processes import replay
from tests.integration.runtimes import run_until
from tests.integration.webhooks import basic, infobip_report
from tests.kafka_helpers import TopicWatcher, collect_until


def _logged(caplog: pytest.LogCaptureFixture, event: str, **fields: Any) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict)
            and r.msg.get("event") == event
            and all(r.msg.get(name) == value for name, value in fields.items())]


async def _kept_as_dead_letters(ingest_server: IngestServer, caplog: pytest.LogCaptureFixture,
                                message_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    """Ingest's log lines for an Infobip report of each of `message_ids`, posted while its
    normalizer fails (a bug in this version): each answered 400 and kept as a dead letter."""
    def buggy(request: WebhookRequest) -> list[Any]:
        raise NormalizeError("a bug in this version")

    url = ingest_server.url("infobip", "it-infobip")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(normalizing, "normalize", buggy)
        async with httpx.AsyncClient() as client:
            for message_id in message_ids:
                answer = await client.post(url, content=infobip_report(message_id),
                                           headers=basic())
                assert answer.status_code == 400
    return _logged(caplog, "webhook kept as dead letter",
                   account="it-infobip")[-len(message_ids):]


async def test_ingests_logged_dead_letter_id_replays_that_webhook_alone(
    ingest_server: IngestServer, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = f"from-log-{uuid.uuid4()}", f"from-log-{uuid.uuid4()}"
    lines = await _kept_as_dead_letters(ingest_server, caplog, (first, second))
    assert len(lines) == 2
    logged_id = lines[0]["dead_letter_id"]
    assert logged_id != lines[1]["dead_letter_id"]

    async with TopicWatcher(kafka_bootstrap, (MESSAGE_STATUS.name,)) as watcher:
        start = await watcher.snapshot()
        code, out, err = await replay(kafka_bootstrap, "--id", logged_id)
        events = [orjson.loads(r.value)
                  for r in (await watcher.records_since(start)).get(MESSAGE_STATUS.name, [])]

    assert code == 0, err
    assert [(line["id"], line["outcome"], line["records"]) for line in out] == [
        (logged_id, "replayed", 1)]
    assert [event["message_id"] for event in events] == [first]


async def test_a_workers_logged_dead_letter_id_replays_that_record_alone(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"test.from-log.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"), DEAD_LETTER))
    name = f"bot-from-log-{uuid.uuid4().hex[:8]}"  # a stage replay knows: a custom bot's
    both_failed = asyncio.Event()
    failures = 0

    async def broken(record: Record, ctx: Context) -> None:
        nonlocal failures
        failures += 1
        if failures == 2:
            both_failed.set()
        raise RuntimeError("a bug in the handler")

    async with TopicWatcher(kafka_bootstrap, (DEAD_LETTER.name,)) as letters:
        before = await letters.snapshot()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for n in (1, 2):
                await producer.send_and_wait(topic, b'{"n": %d}' % n, key=b"same")
        finally:
            await producer.stop()
        runtime = WorkerRuntime(name=name, kafka=kafka_bootstrap, topics=[topic],
                                handler=broken, group_id=f"g-{name}",
                                retry=RetryPolicy(max_attempts=1, base_delay_s=0.01))
        await run_until(runtime, both_failed)
        await collect_until(letters, before, lambda found: len(
            [r for r in found.get(DEAD_LETTER.name, [])
             if orjson.loads(r.value)["stage"] == f"worker:{name}"]) == 2)
    lines = _logged(caplog, "record dead-lettered", worker=name)
    assert [line["offset"] for line in lines] == [0, 1]
    logged_id = lines[0]["dead_letter_id"]

    async with TopicWatcher(kafka_bootstrap, (topic,)) as watcher:
        start = await watcher.snapshot()
        code, out, err = await replay(kafka_bootstrap, "--id", logged_id)
        back = (await watcher.records_since(start)).get(topic, [])

    assert code == 0, err
    assert [(line["id"], line["outcome"]) for line in out] == [(logged_id, "replayed")]
    assert [r.value for r in back] == [b'{"n": 1}']


async def test_ingests_logged_raw_id_not_found_as_a_letter_says_it_needs_source_raw(
    ingest_server: IngestServer, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Ingest's line names the webhook by two ids: `replay --id <raw_id>` said only "not found
    # in the window", exit 3, as if the webhook were gone.
    [line] = await _kept_as_dead_letters(ingest_server, caplog, (f"raw-id-{uuid.uuid4()}",))
    raw_id, letter_id = line["raw_id"], line["dead_letter_id"]

    as_letter, out, err = await replay(kafka_bootstrap, "--id", raw_id, "--dry-run")
    as_raw, raw_out, raw_err = await replay(kafka_bootstrap, "--source", "raw", "--id", raw_id,
                                            "--dry-run")
    letter_as_raw, _, letter_err = await replay(kafka_bootstrap, "--source", "raw",
                                                "--id", letter_id, "--dry-run")

    assert as_letter == 3 and out == []
    assert err.splitlines()[-2:] == [
        f"not found in the window: {raw_id}",
        "hint: --id takes a dead letter's dead_letter_id (its log line's); a raw_id (ingest's "
        "line's raw_id, an event's) needs --source raw and a --since before it"]
    assert as_raw == 0, raw_err  # as the hint says
    assert [(each["id"], each["outcome"]) for each in raw_out] == [(raw_id, "replayable")]
    assert letter_as_raw == 3
    assert letter_err.splitlines()[-1] == (
        "hint: with --source raw, --id takes a raw_id; a dead letter's dead_letter_id is "
        "replayed without --source raw")
