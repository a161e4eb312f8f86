"""Ingest is not ready while its correlation index is still reading the results: a report on
a recent send would go out without its command id."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingest.app import Readiness
from ingest.correlation import CorrelationIndex

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
    assert after is not None and after.startswith("Kafka unreachable")  # the next check


async def test_without_providers_to_correlate_there_is_nothing_to_wait_for() -> None:
    producer: Any = ConnectedProducer()
    problem = await Readiness(NOWHERE, producer).problem()
    assert problem is not None and problem.startswith("Kafka unreachable")


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
    assert await readiness.problem() == "missing topics: switchboard.raw.v1"
    assert checks == 2
