"""`switchboard tail` whose broker stops answering during its start, after saying where the
topic's partitions are and before saying where to start reading them (paused: connections
open, nothing answered, as a partition's leader out of reach while another broker answers):
it says why it waits on stderr, and that Kafka answers again, then prints what comes."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition

from switchboard import tail as tail_module
from switchboard.clients import KafkaTarget
from switchboard.records import OutRecord
from switchboard.topics import topic_partitions
from tests.integration.printed import Printed
from tests.integration.processes import own_broker, paused, until
from tests.kafka_helpers import new_topic, publish

WAIT_SAID_AFTER_S = 2.0
PAUSED_S = 8.0
WARNING = "warning: Kafka has answered none of tail's requests for where to start reading for "
BACK = "Kafka answers again (silent for "


async def test_tail_says_why_its_start_waits_on_a_silent_broker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Tail waited there, in aiokafka's position(), for as long as the broker was silent,
    # without a word: its fetches' silence is said only once it fetches.
    monkeypatch.setattr(tail_module, "START_SILENT_AFTER_S", WAIT_SAID_AFTER_S)
    printed = Printed(capsys)
    async with own_broker(tmp_path) as broker:
        bootstrap = broker.bootstrap_servers
        topic = await new_topic(bootstrap, "tail.start.paused", 1)
        pause = contextlib.ExitStack()
        pausing: list[bool] = []

        async def partitions_then_pause(kafka: KafkaTarget, name: str) -> list[TopicPartition]:
            partitions = await topic_partitions(kafka, name)
            pause.enter_context(paused(broker))  # what tail asks next goes unanswered
            pausing.append(True)
            return partitions

        monkeypatch.setattr(tail_module, "topic_partitions", partitions_then_pause)
        tailing = asyncio.create_task(tail_module.tail(bootstrap, [topic], limit=1))
        with pause:
            await until(lambda: pausing, 60, "paused during the start")
            await asyncio.sleep(PAUSED_S)
            printed.read()
        try:
            assert len(printed.said(WARNING)) == 1, printed.err
            assert not tailing.done()
            await until(lambda: printed.has_said(BACK), 60, "said Kafka answers again")
            for n in range(60):  # bounded: 30 s; tail starts at the end, so published until
                await publish(bootstrap, [OutRecord(topic, orjson.dumps({"n": n}))])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(tailing), 0.5)
                if tailing.done():
                    break
            await tailing
            printed.read()
        finally:
            if not tailing.done():
                tailing.cancel()
        assert orjson.loads(printed.out[-1])["topic"] == topic
        assert len(printed.said(WARNING)) == 1, printed.err
        assert len(printed.said(BACK)) == 1, printed.err
