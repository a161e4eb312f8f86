"""Commands/s through the sender (against the simulator) and events/s through the consumer
runtime with a no-op handler, each next to the raw aiokafka consume rate of the same records.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from bench.common import HOST, accounts_toml, child, kafka
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.commands import OutboundCommand
from switchboard.localkafka import free_port
from switchboard.producer import DurableProducer
from switchboard.records import OutRecord, command_record
from switchboard.topics import OUTBOUND, OUTBOUND_RESULTS, TopicSpec, ensure_topics

COMMANDS = 3000
EVENTS = 30000


class Throughput:
    """Records per second from the first record seen to the last.

    Start-up (clients, the group join, the first fetch) is not throughput: at these counts
    it is a large share of the run, and the runtime's start-up also starts a producer, so
    timing it on one side and not the other skewed the ratio.
    """

    def __init__(self) -> None:
        self.seen = 0
        self.first_batch = 0
        self.first_at = 0.0
        self.last_at = 0.0

    def add(self, records: int, now: float) -> None:
        if not records:
            return
        if not self.seen:
            self.first_batch, self.first_at = records, now
        self.seen += records
        self.last_at = now

    def rate(self) -> float:
        """The records after the first batch over the time they took (NaN with one batch)."""
        elapsed = self.last_at - self.first_at
        return (self.seen - self.first_batch) / elapsed if elapsed > 0 else float("nan")


async def _produce(bootstrap: str, records: list[OutRecord]) -> None:
    producer = DurableProducer(bootstrap, timeout_s=60)
    await producer.start()
    try:
        for start in range(0, len(records), 1000):
            await producer.publish(records[start:start + 1000])
    finally:
        await producer.stop()


async def raw_consume_rate(bootstrap: str, topic: str, count: int) -> float:
    """The baseline: a bare aiokafka consumer group reading `count` records, doing nothing."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        throughput = Throughput()
        deadline = time.perf_counter() + 120
        while throughput.seen < count and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            throughput.add(sum(len(records) for records in batch.values()), time.perf_counter())
        return throughput.rate()
    finally:
        await consumer.stop()


async def runtime_rate(bootstrap: str, topic: str, count: int) -> float:
    done = asyncio.Event()
    throughput = Throughput()

    async def noop(record: Record, ctx: Context) -> None:
        throughput.add(1, time.perf_counter())
        if throughput.seen >= count:
            done.set()

    runtime = WorkerRuntime(name="bench-noop", kafka=bootstrap, topics=[topic],
                            handler=noop, group_id=f"bench-noop-{uuid.uuid4().hex[:6]}")
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(done.wait(), 300)
    runtime.stop()
    await task
    return throughput.rate()


def result_statuses(values: Iterable[bytes]) -> Counter[str]:
    """How many results of each status: a command the provider refused (or that failed
    before reaching it) is not a command sent, however fast it was."""
    return Counter(str(orjson.loads(value).get("status")) for value in values)


async def results_rate(bootstrap: str, count: int, timeout_s: float = 300
                       ) -> tuple[float, Counter[str]]:
    consumer = AIOKafkaConsumer(OUTBOUND_RESULTS.name, bootstrap_servers=bootstrap,
                                auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.seek_to_end()
        return await _count_until(consumer, count, timeout_s)
    finally:
        await consumer.stop()


async def _count_until(consumer: AIOKafkaConsumer, count: int, timeout_s: float
                       ) -> tuple[float, Counter[str]]:
    throughput, statuses = Throughput(), Counter[str]()
    deadline = time.perf_counter() + timeout_s
    while throughput.seen < count and time.perf_counter() < deadline:
        batch = await consumer.getmany(timeout_ms=1000)
        throughput.add(sum(len(records) for records in batch.values()), time.perf_counter())
        statuses.update(result_statuses(record.value for records in batch.values()
                                        for record in records))
    if throughput.seen < count:
        raise RuntimeError(f"only {throughput.seen}/{count} results within {timeout_s}s")
    return throughput.rate(), statuses


async def run(bootstrap: str, workdir: Path) -> int:
    noop_topic = f"bench.events.{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, partitions=6, replication_factor=1,
                        specs=(TopicSpec(noop_topic, "bench"),))
    await _produce(bootstrap, [OutRecord(noop_topic, b'{"n":%d}' % n, b"k%d" % (n % 500))
                               for n in range(EVENTS)])
    raw = await raw_consume_rate(bootstrap, noop_topic, EVENTS)
    noop = await runtime_rate(bootstrap, noop_topic, EVENTS)
    print(f"consumer runtime, no-op handler: {noop:,.0f} events/s; raw aiokafka consume of the "
          f"same topic: {raw:,.0f} records/s; ratio {noop / raw:.2f}")

    sim_port = free_port()
    accounts = workdir / "accounts.toml"
    accounts.write_text(accounts_toml(sim_port))
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SWITCHBOARD_ACCOUNTS_FILE": str(accounts),
           "SWITCHBOARD_LOG_LEVEL": "WARNING", "SWITCHBOARD_PUBLIC_URL": f"http://{HOST}:9"}
    now = datetime.now(UTC)
    commands = [command_record(OutboundCommand(
        id=f"bench-{uuid.uuid4()}", account="bench-infobip", to=f"+4179{n:07d}",
        text="Benchmark message", created_at=now), "infobip") for n in range(COMMANDS)]
    async with child(["simulate", "--port", str(sim_port), "--ingest-url", f"http://{HOST}:9"],
                     env, f"http://{HOST}:{sim_port}/_sim/health"), \
            child(["worker", "sender"], env):
        counting = asyncio.create_task(results_rate(bootstrap, COMMANDS))
        await asyncio.sleep(2)  # the result reader is positioned; the sender has joined
        await _produce(bootstrap, commands)
        sent, statuses = await counting
    raw_commands = await raw_consume_rate(bootstrap, OUTBOUND.name, COMMANDS)
    print(f"sender against the simulator: {sent:,.0f} commands/s; raw aiokafka consume of the "
          f"outbound topic: {raw_commands:,.0f} records/s; ratio {sent / raw_commands:.3f}; "
          f"results {dict(statuses)}")
    accepted = statuses["accepted"]
    if accepted != COMMANDS:
        print(f"MISMATCH: {accepted}/{COMMANDS} commands accepted by the simulator")
    return 0 if accepted == COMMANDS else 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp, \
            kafka(Path(tmp)) as bootstrap:
        return asyncio.run(run(bootstrap, Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main())
