"""The README's recipe (Troubleshooting) for a record aiokafka cannot read in a worker's topic,
followed as it is written, against the real broker, with Kafka's own kafka-consumer-groups
tool from the local broker's jars: where the group stands, every worker of the group stopped,
the group moved past the record (the offset from the error plus one), then past the rest of
its producer batch the same way, and the workers start again."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import uuid

from aiokafka import TopicPartition

from switchboard.localkafka import ensure_jars, free_port
from switchboard.settings import Settings
from switchboard.topics import MESSAGE_INBOUND
from tests.integration.processes import (
    REPO,
    killed_if_left,
    switchboard,
    wait_for_line,
    wait_ready,
    worker_environment,
)
from tests.kafka_helpers import committed_offset, produce_unreadable_to_partition_1

STOPPED_AT = re.compile(r"^error: worker keywords stopped: aiokafka cannot read the record at "
                        r"(?P<topic>\S+) partition (?P<partition>\d+) offset (?P<offset>\d+) \(",
                        re.MULTILINE)


def _consumer_groups(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    """kafka-consumer-groups.sh, which runs this class of the local broker's jars."""
    lib = ensure_jars(Settings().cache_dir)
    return subprocess.run(
        ["java", "-cp", f"{lib}/*", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
         "--bootstrap-server", bootstrap, *args],
        capture_output=True, text=True, timeout=120, check=False)


def _current_offset(bootstrap: str, group: str, topic: str, partition: int) -> int:
    """CURRENT-OFFSET, as `--describe` shows it."""
    done = _consumer_groups(bootstrap, "--describe", "--group", group)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(rf"^\S+\s+{re.escape(topic)}\s+{partition}\s+(\d+)\s", done.stdout,
                      re.MULTILINE)
    assert found is not None, done.stdout
    return int(found[1])


def _move_past(bootstrap: str, group: str, stopped: str) -> str:
    """The README's command, for the record the worker's `error:` line names."""
    found = STOPPED_AT.search(stopped)
    assert found is not None, stopped
    done = _consumer_groups(
        bootstrap, "--group", group, "--topic", f"{found['topic']}:{found['partition']}",
        "--reset-offsets", "--to-offset", str(int(found["offset"]) + 1), "--execute")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def _stops_with_error(env: dict[str, str]) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "switchboard.cli", "worker", "keywords"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stderr


async def test_the_readmes_recipe_moves_a_group_past_a_record_aiokafka_cannot_read(
        kafka_bootstrap: str) -> None:
    prefix = f"it-offsets-{uuid.uuid4().hex[:8]}."
    port = free_port()
    env = worker_environment(kafka_bootstrap, prefix) | {
        "SWITCHBOARD_TOPIC_PARTITIONS": "2", "SWITCHBOARD_METRICS_PORT": str(port)}
    topic, group = prefix + MESSAGE_INBOUND.name, prefix + "switchboard-keywords"
    tp = TopicPartition(topic, 1)

    # Offset 0 alone; one producer batch of offsets 1, 2 (the header key that is not UTF-8)
    # and 3; offset 4 alone: written while the worker runs (a new group starts at the end).
    with killed_if_left(switchboard(env, "worker", "keywords")) as worker:
        await wait_ready(f"http://127.0.0.1:{port}")
        await produce_unreadable_to_partition_1(kafka_bootstrap, topic)
        output, _ = await asyncio.to_thread(worker.communicate, timeout=120)
    assert worker.returncode == 1, output
    assert f"error: worker keywords stopped: aiokafka cannot read the record at {topic} " \
           "partition 1 offset 2 (" in output, output

    # "The readable records before it in its partition are handled first ... and committed:
    # the group stands at the offset named ... See where the group stands first
    # (`CURRENT-OFFSET`: the offset named ...)": `--describe`
    standing = await asyncio.to_thread(_current_offset, kafka_bootstrap, group, topic, 1)
    assert standing == await committed_offset(kafka_bootstrap, group, tp)
    assert standing == 2  # offset 1, readable, in the fetch aiokafka failed, is handled

    # "stop every worker of the group ..., move the group past the record with Kafka's own
    # tool, the offset from the error plus one, and start the workers again"
    said = await asyncio.to_thread(_move_past, kafka_bootstrap, group, output)
    assert re.search(rf"{re.escape(topic)}\s+1\s+3\b", said), said
    # "If a worker then stops at the next offset, that record was in the same producer
    # batch: move past it the same way"
    stopped = await _stops_with_error(env)
    assert f"record at {topic} partition 1 offset 3 (" in stopped, stopped
    await asyncio.to_thread(_move_past, kafka_bootstrap, group, stopped)

    with killed_if_left(switchboard(env, "worker", "keywords")) as worker:
        await asyncio.to_thread(wait_for_line, worker, "worker started")
        for _ in range(300):  # offset 4 handled (a dead letter: its value is no event)
            if await committed_offset(kafka_bootstrap, group, tp) == 5:
                break
            await asyncio.sleep(0.2)
        # "Kafka does not move the offsets of a group with members: the tool says `Error:
        # Assignments can only be reset if the group … is inactive`"
        refused = await asyncio.to_thread(
            _consumer_groups, kafka_bootstrap, "--group", group, "--topic", f"{topic}:1",
            "--reset-offsets", "--to-offset", "0", "--execute")
        worker.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(worker.communicate, timeout=60)
    assert worker.returncode == 0, output
    # exit 0 all the same: the README says to look for the line
    assert "Error: Assignments can only be reset if the group" in refused.stdout, refused
    assert await committed_offset(kafka_bootstrap, group, tp) == 5
