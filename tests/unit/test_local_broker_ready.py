"""Waiting for the local broker to be usable (`run`, `kafka`): quiet about what it waits
through, and still saying what kept it from being usable."""

from __future__ import annotations

import logging

import pytest

from switchboard.localkafka import BrokerError, readiness, wait_until_usable

SENDER = logging.getLogger("aiokafka.producer.sender")


async def test_what_aiokafka_retries_while_the_broker_takes_up_its_partitions_is_not_shown(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A restarted broker refused the readiness record for a moment (not yet the leader it named
    # itself); aiokafka retried, and its warning was the first line of every restart.
    async def round_trip(bootstrap_servers: str) -> None:
        SENDER.warning("Got error produce response on topic-partition TopicPartition(topic="
                       "'switchboard.selftest.v1', partition=0), retrying. Error: <class "
                       "'aiokafka.errors.NotLeaderForPartitionError'>")

    def said() -> list[str]:
        # This sender's lines only: a client another test left behind (the session's loop
        # runs on) may log that its broker is gone at any moment.
        return [record.getMessage() for record in caplog.records if record.name == SENDER.name]

    monkeypatch.setattr(readiness, "_round_trip", round_trip)
    with caplog.at_level(logging.INFO):
        await wait_until_usable("127.0.0.1:9092")
        assert said() == []
        SENDER.warning("once the broker is ready, aiokafka is heard again")
    assert said() == ["once the broker is ready, aiokafka is heard again"]


async def test_a_broker_that_never_becomes_usable_is_still_said_with_its_last_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def round_trip(bootstrap_servers: str) -> None:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(readiness, "_round_trip", round_trip)
    with pytest.raises(BrokerError, match="not usable: ConnectionRefusedError"):
        await wait_until_usable("127.0.0.1:9092", timeout_s=0.2)
    assert logging.getLogger("aiokafka").getEffectiveLevel() < logging.CRITICAL
