"""A log line that says a record was dead-lettered names the dead letter by its id, the one
`switchboard replay --id` takes: ingest's printed only the raw request's id and a worker's only
where the record was in Kafka, so an operator could not go from the line to the replay."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import TopicPartition

from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.logs import configure_logging
from switchboard.producer import PublishError
from switchboard.records import OutRecord
from switchboard.topics import DEAD_LETTER, RAW
from tests.fakes import KeepingProducer, infobip_ingest

PASSWORD = "password-123"
FAST = RetryPolicy(max_attempts=2, base_delay_s=0, max_delay_s=0)


def _lines(err: str, event: str) -> list[dict[str, Any]]:
    return [line for line in map(orjson.loads, err.splitlines()) if line.get("event") == event]


def _letter_ids(producer: KeepingProducer) -> list[str]:
    return [orjson.loads(r.value)["id"] for r in producer.published if r.topic == DEAD_LETTER.name]


async def test_ingests_dead_letter_line_names_the_letters_id(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    producer = KeepingProducer()
    app = infobip_ingest(producer, PASSWORD)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        answer = await client.post(
            "/webhooks/infobip/acme", content=b'{"results": "not a list"}',
            headers={"authorization": "Basic " + base64.b64encode(
                f"u:{PASSWORD}".encode()).decode(), "content-type": "application/json"})
    assert answer.status_code == 400
    err = capsys.readouterr().err
    [line] = _lines(err, "webhook kept as dead letter")
    [letter_id] = _letter_ids(producer)
    assert line["dead_letter_id"] == letter_id
    [raw] = [r for r in producer.published if r.topic == RAW.name]
    assert line["raw_id"] == orjson.loads(raw.value)["id"] != letter_id
    assert PASSWORD not in err


async def _failing(record: Record, ctx: Context) -> None:
    raise RuntimeError("the CRM is down")


async def test_a_workers_dead_letter_line_names_the_letters_id(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    producer = KeepingProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=_failing,
                            retry=FAST, producer=producer)  # type: ignore[arg-type]
    await asyncio.wait_for(runtime._handle_one(Record("t", 3, 41, b"k", b"{}")), 5)
    [line] = _lines(capsys.readouterr().err, "record dead-lettered")
    assert line["dead_letter_id"] == _letter_ids(producer)[0]
    assert (line["topic"], line["partition"], line["offset"]) == ("t", 3, 41)


class RefusingProducer(KeepingProducer):
    """Kafka refuses every record for good (too large, say)."""

    async def publish(self, records: list[OutRecord]) -> None:
        raise PublishError("MessageSizeTooLargeError", lasting=True)


async def test_a_letter_kafka_refused_is_not_logged_as_dead_lettered(
        capsys: pytest.CaptureFixture[str]) -> None:
    # It was, with an id no replay could find, before the worker stopped short of the record.
    configure_logging("INFO", "json")
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=_failing,
                            retry=FAST, producer=RefusingProducer())  # type: ignore[arg-type]
    await runtime._dispatch({TopicPartition("t", 3): [Record("t", 3, 41, b"k", b"{}")]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    err = capsys.readouterr().err
    assert _lines(err, "record dead-lettered") == []
    [stop] = [line for line in map(orjson.loads, err.splitlines())
              if str(line.get("event", "")).startswith("record neither handled nor kept")]
    # The handler's failure is still told, by type, in the line the worker stops with.
    assert "builtins.RuntimeError (its text left out)" in stop["exception"]
    assert stop["offset"] == 41
