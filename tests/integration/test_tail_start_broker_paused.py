"""`switchboard tail` whose broker stops answering during its start, after saying where the
topic's partitions are and before saying where to start reading them (paused: connections
open, nothing answered, as a partition's leader out of reach while another broker answers):
it says why it waits on stderr, and that Kafka answers again, then prints what comes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition

from switchboard import tail as tail_module
from switchboard.clients import KafkaTarget
from switchboard.records import OutRecord
from switchboard.topics import TopicSpec, ensure_topics, topic_partitions
from tests.integration.processes import own_broker, paused, until
from tests.kafka_helpers import publish

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
    async with own_broker(tmp_path) as broker:
        bootstrap = broker.bootstrap_servers
        topic = f"test.tail.start.paused.{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, partitions=1, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))
        pause = contextlib.ExitStack()
        pausing: list[bool] = []

        async def partitions_then_pause(kafka: KafkaTarget, name: str) -> list[TopicPartition]:
            partitions = await topic_partitions(kafka, name)
            pause.enter_context(paused(broker))  # what tail asks next goes unanswered
            pausing.append(True)
            return partitions

        monkeypatch.setattr(tail_module, "topic_partitions", partitions_then_pause)
        err: list[str] = []
        out: list[str] = []

        def read() -> None:
            captured = capsys.readouterr()
            out.extend(captured.out.splitlines())
            err.extend(captured.err.splitlines())

        tailing = asyncio.create_task(tail_module.tail(bootstrap, [topic], limit=1))
        with pause:
            await until(lambda: pausing, 60, "paused during the start")
            await asyncio.sleep(PAUSED_S)
            read()
        try:
            said = [line for line in err if line.startswith(WARNING)]
            assert len(said) == 1, err
            assert not tailing.done()

            def back() -> bool:
                read()
                return any(line.startswith(BACK) for line in err)

            await until(back, 60, "said Kafka answers again")
            for n in range(60):  # bounded: 30 s; tail starts at the end, so published until
                await publish(bootstrap, [OutRecord(topic, orjson.dumps({"n": n}))])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(tailing), 0.5)
                if tailing.done():
                    break
            await tailing
            read()
        finally:
            if not tailing.done():
                tailing.cancel()
        assert orjson.loads(out[-1])["topic"] == topic
        assert len([line for line in err if line.startswith(WARNING)]) == 1, err
        assert len([line for line in err if line.startswith(BACK)]) == 1, err
