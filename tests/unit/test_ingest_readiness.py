"""Ingest is not ready while its correlation index is still reading the results: a report on
a recent send would go out without its command id."""

from __future__ import annotations

from typing import Any

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
