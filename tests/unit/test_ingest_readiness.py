"""Ingest is not ready while its correlation index is still reading the results: a report on
a recent send would go out without its command id."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from ingest.app import Readiness, create_app
from ingest.correlation import CorrelationIndex
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from tests.fakes import KeepingProducer

NOWHERE = "127.0.0.1:1"  # nothing listens: the Kafka check fails at once


class ConnectedProducer:
    started = True


async def test_not_ready_until_the_correlation_index_caught_up() -> None:
    index = CorrelationIndex(NOWHERE, frozenset({"infobip-omnichat"}))
    producer: Any = ConnectedProducer()
    readiness = Readiness(NOWHERE, producer, correlations=index)
    assert await readiness.problem() == "reading the outbound results that correlate reports"
    index.caught_up.set()
    after = await readiness.problem()
    assert after == "Kafka unreachable"  # the next check


async def test_without_providers_to_correlate_there_is_nothing_to_wait_for() -> None:
    producer: Any = ConnectedProducer()
    problem = await Readiness(NOWHERE, producer).problem()
    assert problem == "Kafka unreachable"


async def test_probes_arriving_together_share_one_kafka_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # /readyz is on the webhook port: each probe made its own admin connection once the last
    # check was 5 s old, a connection attempt of up to 5 s each while Kafka was unreachable.
    answers = [[], ["switchboard.raw.v1"]]
    checks = 0

    async def missing_topics(kafka: Any) -> list[str]:
        nonlocal checks
        checks += 1
        await asyncio.sleep(0.05)
        return answers[min(checks, 2) - 1]

    monkeypatch.setattr("ingest.app.missing_topics", missing_topics)
    producer: Any = ConnectedProducer()
    readiness = Readiness(NOWHERE, producer, ttl_s=0)  # every probe wants a fresh check
    assert await asyncio.gather(*(readiness.problem() for _ in range(50))) == [None] * 50
    assert checks == 1
    # A probe that gives up does not cancel the check the others wait for.
    impatient = asyncio.ensure_future(readiness.problem())
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert await readiness.problem() == "Kafka topics missing"
    assert checks == 2


class Unreachable(Exception):
    """Stands for what aiokafka raises: its class and text name brokers and internals."""


async def test_the_public_readyz_says_what_is_wrong_and_the_log_says_the_details(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # /readyz is on the webhook port, which the internet reaches: it answered "Kafka
    # unreachable: KafkaConnectionError", the client library's class, to anyone who asked.
    outcomes: list[Any] = [Unreachable("Unable to bootstrap from [('10.0.3.7', 9093)]"),
                           Unreachable("Unable to bootstrap from [('10.0.3.7', 9093)]"),
                           ["staging.switchboard.raw.v1"], []]

    async def missing_topics(kafka: Any) -> list[str]:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return list(outcome)

    monkeypatch.setattr("ingest.app.missing_topics", missing_topics)
    caplog.set_level(logging.INFO)
    app = create_app(Settings(kafka_bootstrap_servers=NOWHERE), parse_accounts({}))
    app.state.readiness.producer = KeepingProducer()  # connected
    app.state.readiness.ttl_s = 0  # every probe checks
    answers = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        for _ in range(4):
            response = await client.get("/readyz")
            answers.append((response.status_code, response.json()))
    assert answers == [
        (503, {"status": "unavailable", "reason": "Kafka unreachable"}),
        (503, {"status": "unavailable", "reason": "Kafka unreachable"}),
        (503, {"status": "unavailable", "reason": "Kafka topics missing"}),
        (200, {"status": "ready"}),
    ]
    logged = [record.msg for record in caplog.records if isinstance(record.msg, dict)
              and record.name == "ingest.app"]
    # Once per change, not per probe: a probe every few seconds would fill the log.
    assert [(line["event"], line.get("problem")) for line in logged] == [
        ("not ready", "Kafka unreachable: Unreachable(\"Unable to bootstrap from "
                      "[('10.0.3.7', 9093)]\")"),
        ("not ready", "missing topics: staging.switchboard.raw.v1"),
        ("ready: kafka reachable and topics present", None),
    ]
