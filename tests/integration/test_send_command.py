"""`switchboard send` against the real broker: the command lands keyed by its conversation,
and --wait returns the sender's result (published here as a sender would), or says none came.
Topics under a name prefix of their own: the session's senders never see these commands."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from switchboard.clients import KafkaConnection
from switchboard.commands import OutboundCommand, OutboundResult, ResultStatus
from switchboard.outbox import send_command
from switchboard.records import command_record, result_record
from switchboard.topics import OUTBOUND, OUTBOUND_RESULTS, ensure_topics
from tests.kafka_helpers import TopicWatcher, collect_until, publish

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


async def _isolated(bootstrap: str) -> KafkaConnection:
    kafka = KafkaConnection(bootstrap, name_prefix=f"it-send-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(kafka, partitions=3, replication_factor=1,
                        specs=(OUTBOUND, OUTBOUND_RESULTS))
    return kafka


def _command(text: str = "hello") -> OutboundCommand:
    return OutboundCommand(id=str(uuid.uuid4()), account="demo-infobip", to="+41790001111",
                           text=text, created_at=datetime.now(UTC))


async def test_wait_returns_the_result_the_sender_publishes(kafka_bootstrap: str) -> None:
    kafka = await _isolated(kafka_bootstrap)
    command = _command()
    async with TopicWatcher(kafka_bootstrap, (kafka.topic(OUTBOUND.name),)) as outbound:
        before = await outbound.snapshot()
        sending = asyncio.create_task(send_command(kafka, command, "infobip", wait_s=60))
        found = await collect_until(outbound, before, lambda found: bool(found))
    [record] = found[kafka.topic(OUTBOUND.name)]
    assert record.key == command_record(command, "infobip").key
    assert OutboundCommand.from_json(record.value) == command
    # Another command's result first: only this command's may be taken.
    other = OutboundResult(command_id="someone-else", account="demo-infobip", provider="infobip",
                           to="+41790001111", status=ResultStatus.FAILED, attempts=1,
                           completed_at=datetime.now(UTC))
    result = other.model_copy(update={"command_id": command.id,
                                      "status": ResultStatus.ACCEPTED,
                                      "provider_message_id": "ib-1"})
    await publish(kafka, [result_record(other, record.key), result_record(result, record.key)])
    assert await asyncio.wait_for(sending, 30) == result


async def test_wait_without_a_sender_says_no_result(kafka_bootstrap: str) -> None:
    kafka = await _isolated(kafka_bootstrap)
    assert await send_command(kafka, _command(), "infobip", wait_s=1) is None


def test_the_command_line_publishes_one_command(kafka_bootstrap: str) -> None:
    prefix = f"it-send-{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(KafkaConnection(kafka_bootstrap, name_prefix=prefix),
                              partitions=3, replication_factor=1,
                              specs=(OUTBOUND, OUTBOUND_RESULTS)))
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                        "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix,
                        "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS)}

    def send(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "switchboard", "send", *args], env=env,
                              capture_output=True, timeout=120, check=False)

    done = send("demo-infobip", "0041 79 000 2222", "--text", "hi", "--id", "cli-1")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == {"command_id": "cli-1", "published": True}

    async def published() -> list[tuple[bytes, OutboundCommand]]:
        async with TopicWatcher(kafka_bootstrap, (prefix + OUTBOUND.name,)) as outbound:
            found = await outbound.records_since(await outbound.beginning())
        return [(r.key, OutboundCommand.from_json(r.value))
                for r in found.get(prefix + OUTBOUND.name, [])]

    [(key, command)] = asyncio.run(published())
    assert (command.id, command.account, command.text) == ("cli-1", "demo-infobip", "hi")
    assert key == b"infobip|demo-infobip|+41790002222"  # as the sender spells the contact

    waited = send("demo-infobip", "+41790002222", "--text", "hi", "--wait", "1")
    assert waited.returncode == 3 and b"no result within 1 s" in waited.stderr


@pytest.mark.parametrize(("wait", "missing"), [((), OUTBOUND.name),
                                               (("--wait", "5"), OUTBOUND_RESULTS.name)])
def test_a_cluster_without_the_topics_is_one_line_saying_what_creates_them(
        kafka_bootstrap: str, wait: tuple[str, ...], missing: str) -> None:
    """Without --wait the producer waited 5 s for the topic, aiokafka logging its own error
    line before ours, which named no cause."""
    prefix = f"it-send-{uuid.uuid4().hex[:8]}."  # an install whose topics nobody created
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                        "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix,
                        "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS)}
    result = subprocess.run([sys.executable, "-m", "switchboard", "send", "demo-infobip",
                             "+41790002222", "--text", "hi", *wait], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr == (f"error: topic {prefix}{missing} does not exist: "
                             "`switchboard serve`, `run` or a worker creates the topics at "
                             "start-up; start them first; nothing published\n")
