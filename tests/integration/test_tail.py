"""`switchboard tail`: decoded records from the real broker; a mistyped topic is an error."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from switchboard.records import OutRecord, cloudevent_headers
from switchboard.topics import TopicSpec, ensure_topics
from tests.kafka_helpers import publish


def _tail(bootstrap: str, *args: str, prefix: str = "") -> subprocess.CompletedProcess[str]:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                        "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "switchboard.cli", "tail", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("prefix", ["", "tail-install."])
async def test_tail_prints_each_record_decoded(kafka_bootstrap: str, prefix: str) -> None:
    """With a name prefix, `--topic` takes the plain name, as the other settings do."""
    topic = f"test.tail.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(prefix + topic, "test"),))
    headers = cloudevent_headers(ce_id="id-1", source="/test", ce_type="dev.test.v1",
                                 time=datetime.now(UTC))
    await publish(kafka_bootstrap, [
        OutRecord(prefix + topic, orjson.dumps({"n": n}), f"key-{n}".encode(), headers)
        for n in range(3)])

    result = await asyncio.to_thread(_tail, kafka_bootstrap, "--topic", topic, "--all",
                                     "--limit", "3", prefix=prefix)
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(r["offset"], r["key"], r["value"]) for r in lines] == [
        (n, f"key-{n}", {"n": n}) for n in range(3)]
    assert all(r["topic"] == prefix + topic and r["headers"]["ce_type"] == "dev.test.v1"
               for r in lines)


async def test_tail_of_a_mistyped_topic_says_so_and_exits(kafka_bootstrap: str) -> None:
    result = await asyncio.to_thread(_tail, kafka_bootstrap, "--topic", "switchboard.raw.v2")
    assert result.returncode == 2
    assert "no such topic: switchboard.raw.v2" in result.stderr
    assert "switchboard.raw.v1" in result.stderr  # and what there is instead


async def test_with_a_name_prefix_a_mistyped_topic_lists_this_install_s_topics(
        kafka_bootstrap: str) -> None:
    prefix = f"tail-{uuid.uuid4().hex[:6]}."
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(prefix + "switchboard.raw.v1", "test"),))
    result = await asyncio.to_thread(_tail, kafka_bootstrap, "--topic", "switchboard.raw.v2",
                                     prefix=prefix)
    assert result.returncode == 2
    assert (f"no such topic: {prefix}switchboard.raw.v2 (the topics named {prefix}<topic> "
            "are: switchboard.raw.v1)") in result.stderr
