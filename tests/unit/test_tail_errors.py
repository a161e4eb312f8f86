"""`switchboard tail` meeting Kafka errors: while it waits for a topic (Kafka restarting, say)
it waits on; an error Kafka will not get over (no permission to read the topic) is one line.
Both were a traceback, logged as 'stopped by an unexpected error'."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from switchboard import tail as tail_module
from switchboard.cli import main
from switchboard.clients import KafkaConnection


class Cluster:
    """A consumer's topics(): Kafka away at the first look after tail started waiting."""

    def __init__(self) -> None:
        self.looks = 0

    async def topics(self) -> set[str]:
        self.looks += 1
        if self.looks == 2:
            raise KafkaError("Unable to get cluster metadata over all known brokers")
        return set() if self.looks == 1 else {"switchboard.raw.v1"}


async def test_kafka_away_while_tail_waits_for_a_topic_is_waited_for_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tail_module, "TOPIC_CHECK_S", 0)
    cluster = Cluster()
    created = await tail_module._until_created(
        cluster, KafkaConnection("unused:9092"), ["switchboard.raw.v1"], tail_module._Silence())
    assert created == {"switchboard.raw.v1"} and cluster.looks == 3


def test_a_topic_tail_may_not_read_is_one_error_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async def reached(*args: Any) -> None:
        pass

    async def refused(*args: Any, **kwargs: Any) -> None:
        raise TopicAuthorizationFailedError()

    monkeypatch.setattr("switchboard.cli.tail.reach_kafka", reached)
    monkeypatch.setattr("switchboard.tail.tail", refused)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["tail"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == "error: Kafka: [Error 29] TopicAuthorizationFailedError"


class Refetched:
    """A consumer whose failed fetch is not met again when each partition is read alone."""

    def __init__(self) -> None:
        self.at: dict[TopicPartition, int] = {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.at[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.at[tp]

    async def getmany(self, *partitions: TopicPartition, **options: Any) -> dict[Any, Any]:
        return {}


async def test_a_failed_fetch_whose_record_cannot_be_found_is_one_error_not_a_traceback(
        ) -> None:
    tp = TopicPartition("switchboard.raw.v1", 0)
    failed = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    with pytest.raises(tail_module.CannotRead) as said:
        await tail_module._past_unreadable(Refetched(), {tp: 5}, failed)
    assert str(said.value) == (
        "aiokafka cannot read a record of switchboard.raw.v1 (a header key that is not UTF-8: "
        "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte)")


class NotYet:
    """No topics at the first look; the second ends the wait (enough for this test)."""

    def __init__(self) -> None:
        self.looked = False

    async def topics(self) -> set[str]:
        if self.looked:
            raise asyncio.CancelledError
        self.looked = True
        return set()


async def test_tail_with_no_topic_given_waits_for_both_event_topics_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tail_module, "TOPIC_CHECK_S", 0)
    with pytest.raises(asyncio.CancelledError):
        await tail_module._until_created(NotYet(), KafkaConnection("unused:9092"),
                                         ["switchboard.message.inbound.v1",
                                          "switchboard.message.status.v1"],
                                         tail_module._Silence())
    assert capsys.readouterr().err.startswith(
        "waiting for topics switchboard.message.inbound.v1, switchboard.message.status.v1 "
        "to be created (")
