"""A replay stopped mid-window (SIGTERM, as Ctrl-C is a user's) says how to continue it, and
the command it prints replays the rest of the window and none of what it had published: each
letter replayed exactly once over the two runs, across the dead-letter topic's partitions."""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import orjson

from switchboard.records import dead_letter_record
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import replay_stopped_midway
from tests.kafka_helpers import TopicWatcher, publish

LETTERS = 3000
ACCOUNTS = 12  # keyed by account: the letters spread over the topic's partitions
CONTINUE = "to continue where it stopped, without publishing again what it published: "


async def letters_of_a_bug(bootstrap: str, topic: str, stage: str) -> None:
    """LETTERS dead letters of the worker stage `stage`, letter n holding the record {"n": n}."""
    now = datetime.now(UTC)
    await publish(bootstrap, [dead_letter_record(
        dl_id=str(uuid.uuid4()), stage=f"worker:{stage}", reason="a bug", provider="test",
        account=f"resume-{n % ACCOUNTS}", time=now, payload={
            "topic": topic, "value_b64": base64.b64encode(orjson.dumps({"n": n})).decode(),
            "key_b64": None, "headers_b64": [["ce_type", base64.b64encode(b"t").decode()]]})
        for n in range(LETTERS)])


def env(bootstrap: str) -> dict[str, str]:
    return os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}


async def test_a_stopped_replay_continued_as_it_says_replays_each_letter_once(
        kafka_bootstrap: str) -> None:
    # Stopped, it said only "running it again publishes those again": the one way on was the
    # same window again, which published every letter it had replayed a second time.
    topic = f"test.replay.resume.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    stage = f"bot-resume-{uuid.uuid4().hex[:8]}"
    await letters_of_a_bug(kafka_bootstrap, topic, stage)

    async with TopicWatcher(kafka_bootstrap, (topic,)) as watcher:
        start = await watcher.snapshot()
        code, out, err = await replay_stopped_midway(kafka_bootstrap, "--since", "10m",
                                              "--stage", stage)
        assert code == 128 + signal.SIGTERM, err
        first = [orjson.loads(line) for line in out.splitlines()]
        assert 0 < len(first) < LETTERS, err
        said = [line for line in err.splitlines() if line.startswith(CONTINUE)]
        assert len(said) == 1, err
        command = shlex.split(said[0].removeprefix(CONTINUE))
        assert command[:2] == ["switchboard", "replay"] and "--after" in command, command
        assert "10m" not in command  # the window's start as the time it stood for

        rest = await asyncio.to_thread(
            _run, [sys.executable, "-m", "switchboard.cli", *command[1:]], env(kafka_bootstrap))
        back = (await watcher.records_since(start)).get(topic, [])

    code, out, err = rest
    assert code == 0, err
    second = [orjson.loads(line) for line in out.splitlines()]
    assert {line["outcome"] for line in first + second} == {"replayed"}
    assert not {line["id"] for line in first} & {line["id"] for line in second}
    assert len({line["partition"] for line in first + second}) > 1
    published = sorted(orjson.loads(record.value)["n"] for record in back)
    assert published == list(range(LETTERS)), "a letter replayed twice, or not at all"


def _run(command: list[str], environment: dict[str, str]) -> tuple[int, bytes, str]:
    done = subprocess.run(command, env=environment, capture_output=True, timeout=180,
                          check=False)
    return done.returncode, done.stdout, done.stderr.decode()


async def test_after_naming_a_partition_the_topic_lacks_is_refused(kafka_bootstrap: str) -> None:
    # Offsets of another topic or cluster, read as this one's, would skip its records.
    code, out, err = await asyncio.to_thread(
        _run, [sys.executable, "-m", "switchboard.cli", "replay", "--since", "10m",
               "--stage", f"bot-none-{uuid.uuid4().hex[:8]}", "--after", "0:5,99:3"],
        env(kafka_bootstrap))
    assert (code, out) == (1, b""), err
    assert "error: --after names partitions 99 that switchboard.dead-letter.v1 does not " \
           "have (it has 3)" in err, err
