"""The worker runtime's retry lines during an outage: one in full per worker, cause and error
type and window, then a count; what becomes of each record is still said record by record."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from consumers import runtime as runtime_module
from consumers.commits import COMMIT_TIMEOUT_S
from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.producer import PublishError
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import Group

TP = TopicPartition("t", 0)
RECORDS = 50
FAST = RetryPolicy(max_attempts=3, base_delay_s=0, max_delay_s=0)
RETRYING = "handler failed, retrying"


def _batch(count: int) -> dict[TopicPartition, list[Any]]:
    return {TP: [SimpleNamespace(topic="t", partition=0, offset=n, key=str(n).encode(),
                                 value=b"{}", headers=(("ce_id", f"event-{n}".encode()),))
                 for n in range(count)]}


def _lines(caplog: pytest.LogCaptureFixture, prefix: str) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records
            if isinstance(r.msg, dict) and str(r.msg["event"]).startswith(prefix)]


def _retries(worker: str) -> float:
    return REGISTRY.get_sample_value("switchboard_worker_records_total",
                                     {"worker": worker, "outcome": "retry"}) or 0.0


async def _handle(runtime: WorkerRuntime, count: int) -> None:
    await runtime._dispatch(_batch(count))
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 10)


async def test_an_outage_logs_one_retry_line_and_a_count_not_one_per_record(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the CRM a bot calls down, every record in flight failed at every backoff, each
    with its own warning: hundreds of lines a second, burying everything else. The first is
    said in full (which record, the error), the rest counted in one line at the window's end;
    each record's dead letter is still logged, and the metric counts every retry."""

    async def crm_down(record: Record, ctx: Context) -> None:
        raise RuntimeError("the CRM is down")

    runtime = WorkerRuntime(name="retry-log", kafka="unused:9092", topics=["t"],
                            handler=crm_down, retry=FAST,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    before = _retries("retry-log")
    await _handle(runtime, RECORDS)

    [first] = _lines(caplog, RETRYING)
    assert first["event"] == RETRYING
    assert (first["worker"], first["cause"], first["error_type"]) == (
        "retry-log", "error", "RuntimeError")
    assert first["event_id"].startswith("event-") and first["attempt"] == 1
    # Its type and where it was raised: its text may quote the message (switchboard.failure_text).
    assert first["exception"].endswith("builtins.RuntimeError (its text left out)")
    assert "in crm_down" in first["exception"] and "error" not in first
    assert len(_lines(caplog, "record dead-lettered")) == RECORDS  # never throttled
    assert _retries("retry-log") - before == RECORDS * (FAST.max_attempts - 1)

    async def stop_consumer(consumer: Any) -> None:
        return None

    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: Group())
    monkeypatch.setattr(runtime_module, "stop_consumer", stop_consumer)
    runtime.stop()  # long before the window's end: the stop sums up the rest
    await asyncio.wait_for(runtime.run(), 5)
    [_, summary] = _lines(caplog, RETRYING)
    held = RECORDS * (FAST.max_attempts - 1) - 1
    assert summary["event"] == f"{RETRYING}: {held} more in the last 60 s"
    assert (summary["worker"], summary["cause"], summary["error_type"], summary["more"]) == (
        "retry-log", "error", "RuntimeError", held)


async def test_each_cause_of_retries_is_said_and_a_new_window_says_it_again(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka away and a handler's own error are different news: each is said once; once a
    window has passed, an outage still going on is said again in full."""
    monkeypatch.setattr(runtime_module, "RETRY_LOG_WINDOW_S", 0.05)
    failed: dict[int, int] = {}

    async def flaky(record: Record, ctx: Context) -> None:
        failed[record.offset] = failed.get(record.offset, 0) + 1
        if failed[record.offset] > 2:
            return
        if record.offset % 2:
            raise PublishError("Kafka did not acknowledge within 5s")
        raise RuntimeError("the CRM is down")

    runtime = WorkerRuntime(name="retry-causes", kafka="unused:9092", topics=["t"],
                            handler=flaky, retry=FAST,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    await _handle(runtime, 10)
    lines = _lines(caplog, RETRYING)
    assert sorted((line["cause"], line["error_type"]) for line in lines) == [
        ("error", "RuntimeError"), ("kafka_away", "PublishError")]
    assert all(line["event"] == RETRYING for line in lines)

    await asyncio.sleep(0.1)  # the window ends: the held-back retries are summed up
    summaries = [line for line in _lines(caplog, RETRYING) if "more" in line]
    assert sorted((line["cause"], line["more"]) for line in summaries) == [
        ("error", 9), ("kafka_away", 9)]

    failed.clear()
    await _handle(runtime, 2)
    assert len([line for line in _lines(caplog, RETRYING) if "more" not in line]) == 4


async def test_commits_failing_through_an_outage_log_one_line_and_a_count(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every commit of a worker that failed logged a warning: one every 5 s per worker (the
    commit's time limit) for as long as Kafka was away, more where it refused at once. Said
    once per worker and error type, as retries are, and counted; the stop sums up the rest."""
    group = Group()

    async def stop_consumer(consumer: Any) -> None:
        return None

    async def ignore(record: Record, ctx: Context) -> None:
        return None

    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: group)
    monkeypatch.setattr(runtime_module, "stop_consumer", stop_consumer)
    runtime = WorkerRuntime(name="commit-log", kafka="unused:9092", topics=["t"],
                            handler=ignore, commit_interval_s=0.01,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    running = asyncio.create_task(runtime.run())
    try:
        for _ in range(100):
            if runtime._consumer is not None:
                break
            await asyncio.sleep(0.01)
        await group.assign({TP})
        runtime._fetched[TP] = 5  # records done, to be committed
        group.commit_error = KafkaConnectionError("no broker")
        await asyncio.sleep(0.3)
        group.commit_error = TimeoutError()  # aiokafka waiting for a coordinator
        await asyncio.sleep(0.3)
    finally:
        runtime.stop()
        await asyncio.wait_for(running, 5)

    lines = _lines(caplog, "commit failed")
    told = [line for line in lines if line["event"] == "commit failed"]
    assert [(line["worker"], line["error_type"]) for line in told] == [
        ("commit-log", "KafkaConnectionError"), ("commit-log", "TimeoutError")]
    assert "no broker" in told[0]["error"]
    assert told[1]["error"] == f"no answer within {COMMIT_TIMEOUT_S}s"
    summaries = {line["error_type"]: line for line in lines if "more" in line}
    assert set(summaries) == {"KafkaConnectionError", "TimeoutError"}
    for line in summaries.values():
        assert line["more"] >= 1 and line["worker"] == "commit-log"
        assert line["event"] == f"commit failed: {line['more']} more in the last 60 s"
    assert len(lines) == 4
