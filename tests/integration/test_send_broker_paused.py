"""`switchboard send --wait` whose broker stops answering once the command is published (paused:
connections open, nothing answered, as in a network partition or a JVM's long pause): it says
Kafka is not answering, not that no sender may be running."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson

from switchboard.topics import OUTBOUND
from tests.integration.processes import own_broker, paused
from tests.kafka_helpers import TopicWatcher, collect_until

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"
WAIT_S = 10


async def test_send_wait_says_kafka_is_not_answering_when_its_broker_pauses(
        tmp_path: Path) -> None:
    # It said 'no result within 10 s: is a sender running?' of a broker that answered none of
    # its fetches of results.
    async with own_broker(tmp_path) as broker:
        assert broker.process is not None
        env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                            "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS)}
        env.pop("SWITCHBOARD_KAFKA_NAME_PREFIX", None)
        async with TopicWatcher(broker.bootstrap_servers, (OUTBOUND.name,)) as outbound:
            before = await outbound.snapshot()
            send = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "switchboard", "send", "demo-infobip", "+41790001111",
                "--text", "hi", "--id", "paused-1", "--wait", str(WAIT_S), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                found = await collect_until(outbound, before, lambda found: bool(found),
                                            timeout_s=60)
                [record] = found[OUTBOUND.name]
                assert orjson.loads(record.value)["id"] == "paused-1"
                with paused(broker):  # published: now no answers
                    out, err = await asyncio.wait_for(send.communicate(), WAIT_S + 60)
            finally:
                if send.returncode is None:
                    send.kill()
                    await send.wait()
    said = err.decode()
    assert send.returncode == 3, said
    assert out == b""
    assert ("error: command paused-1 published, but no result within 10 s: Kafka is not "
            "answering (none of the fetches of results answered for the last ") in said, said
    assert "is a sender running" not in said, said
