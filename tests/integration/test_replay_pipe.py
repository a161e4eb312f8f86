"""`switchboard replay | head -1`: the reader going away mid-window stops replay, and stderr
says how many letters were replayed, lines lost or not."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid

from switchboard.topics import TopicSpec, ensure_topics
from tests.kafka_helpers import TopicWatcher, publish_worker_letters


async def test_a_reader_that_goes_away_stops_replay_and_it_says_what_it_published(
        kafka_bootstrap: str) -> None:
    # It ended with exit 141 and nothing on stderr: the rest of the batch of letters being
    # reported when the pipe closed was stored without a line, and nothing said how many.
    topic = f"test.replay.pipe.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    stage = f"bot-pipe-{uuid.uuid4().hex[:8]}"
    letters = 3000
    await publish_worker_letters(kafka_bootstrap, topic, stage, letters)

    async with TopicWatcher(kafka_bootstrap, (topic,)) as watcher:
        start = await watcher.snapshot()
        read, write = os.pipe()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard.cli", "replay", "--since", "10m", "--stage", stage,
            env=os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
            stdout=write, stderr=asyncio.subprocess.PIPE)
        os.close(write)
        with os.fdopen(read, "rb") as reader:
            first = await asyncio.to_thread(reader.readline)
        assert b'"outcome":"replayed"' in first  # and the reader is gone, as head's would be
        _, stderr = await asyncio.wait_for(process.communicate(), 120)
        back = (await watcher.records_since(start)).get(topic, [])

    err = stderr.decode()
    assert process.returncode == 128 + signal.SIGPIPE, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    said = re.search(r"^replayed (\d+) of (\d+) \((\d+) records\)", err, re.MULTILINE)
    assert said is not None, err
    replayed, of, records = map(int, said.groups())
    assert replayed == of == records == len(back), "a letter published without being counted"
    assert 0 < replayed < letters, "it read on, publishing for nobody"
    # Lines lost or not (a write failed, or the pipe was seen closed between two batches):
    lost = r"the \d+ letters after them were replayed all the same \(counted above\), and"
    assert re.search(r"stopped: the reader of its output has gone, after \d+ of its lines; "
                     rf"({lost} no other was|no other letter was) published", err), err
