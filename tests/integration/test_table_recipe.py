"""The README's recipe (Troubleshooting) for a record the opt-out list cannot read, followed
as it is written, against the real broker, with Kafka's own kafka-configs tool: the record is
dropped by writing its key again as a tombstone, compaction removes it, and the workers start
again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from consumers.bots.optouts import decode_opt_out
from consumers.table import CompactedTable, UnreadableTableRecord
from switchboard.clients import KafkaConnection
from switchboard.localkafka import ensure_jars
from switchboard.settings import Settings
from switchboard.topics import OPT_OUTS, ensure_topics
from tests.integration.processes import killed_if_left, switchboard, wait_for_line
from tests.kafka_helpers import NotUtf8, send_python_batch

EXAMPLES = Path(__file__).parents[2] / "examples"
KEY = b"demo-infobip|+41790000001"


async def _unreadable_record(bootstrap: str, topic: str) -> None:
    """Offset 0 of partition 0 a record of KEY; offset 1, alone in its producer batch, a newer
    one whose header key is not UTF-8, as a producer of another client library may write it.
    Kafka's compaction leaves such a batch as it is until a newer record of KEY is in a closed
    segment (a batch it drops records of is written anew, which mends its header keys)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=KEY, partition=0,
                                     headers=[("ce_type", b"v")])
        await send_python_batch(producer, topic, 0, [(KEY, b"{}", [(NotUtf8("ce_type"), b"v")])])
    finally:
        await producer.stop()


def _kafka_configs(bootstrap: str, *args: str) -> str:
    """kafka-configs.sh, which runs this class of the broker's own jars."""
    lib = ensure_jars(Settings().cache_dir)
    done = subprocess.run(["java", "-cp", f"{lib}/*", "kafka.admin.ConfigCommand",
                           "--bootstrap-server", bootstrap, *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def _readable(kafka: KafkaConnection) -> bool:
    table = CompactedTable(kafka, OPT_OUTS.name, decode_opt_out)
    try:
        await table.start()
    except UnreadableTableRecord:
        return False
    await table.stop()
    return True


async def test_the_readmes_recipe_gets_the_workers_past_an_unreadable_opt_out_record(
        kafka_bootstrap: str) -> None:
    prefix = f"it-recipe-{uuid.uuid4().hex[:8]}."
    kafka = KafkaConnection(kafka_bootstrap, name_prefix=prefix)
    await ensure_topics(kafka, partitions=1, replication_factor=1)
    topic = prefix + OPT_OUTS.name
    await _unreadable_record(kafka_bootstrap, topic)
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                        "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix,
                        "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLES / "accounts.toml"),
                        "SWITCHBOARD_RULES_FILE": str(EXAMPLES / "rules.toml"),
                        "SWITCHBOARD_LOG_FORMAT": "json"}
    stopped = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "switchboard", "worker", "keywords"], env=env,
        capture_output=True, text=True, timeout=120, check=False)
    assert stopped.returncode == 1, stopped.stderr
    assert (f"error: worker keywords stopped: aiokafka cannot read the record at {topic} "
            "partition 0 offset 1 (") in stopped.stderr

    # "lower `segment.ms` and `min.cleanable.dirty.ratio` on the topic for a while, before
    # writing the key: kafka-configs.sh ... --add-config
    # segment.ms=60000,min.cleanable.dirty.ratio=0.01" (a second here)
    await asyncio.to_thread(_kafka_configs, kafka_bootstrap, "--alter", "--entity-type",
                            "topics", "--entity-name", topic, "--add-config",
                            "segment.ms=1000,min.cleanable.dirty.ratio=0.01")
    # "write its key again ... or an empty value (a tombstone) to drop it, from a client that
    # writes UTF-8 header keys ... then write the key, and once that minute has passed, write
    # it again". The second write closes the segment holding the first: compaction reads
    # closed segments only. (Written as the recipe was, without it, the record stayed.)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, None, key=KEY)
        # Longer than the cleaner's 15 s between looks: it cleans the segment the first write
        # closed (keeping the bad record, the newest of its key there), as on a topic cleaned
        # before. The part left to clean is then one small record, under the default ratio
        # (0.5), and without the recipe's lower one the bad record stayed (it did, 1 run in 5).
        await asyncio.sleep(16)
        await producer.send_and_wait(topic, None, key=KEY)
    finally:
        await producer.stop()

    # "Kafka's log cleaner removes the old record within about 15 s more"; "once Kafka's
    # compaction has removed the old record, the workers start again"
    deadline = time.monotonic() + 90
    while not await _readable(kafka):
        assert time.monotonic() < deadline, "compaction never removed the record"
        await asyncio.sleep(2)
    with killed_if_left(switchboard(env, "worker", "keywords")) as worker:
        await asyncio.to_thread(wait_for_line, worker, "worker started")
        worker.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(worker.communicate, timeout=60)
    assert worker.returncode == 0, output
    # "Afterwards set `segment.ms` back to `86400000`, as Switchboard creates these topics."
    await asyncio.to_thread(_kafka_configs, kafka_bootstrap, "--alter", "--entity-type",
                            "topics", "--entity-name", topic, "--add-config",
                            f"segment.ms={OPT_OUTS.config['segment.ms']}")
