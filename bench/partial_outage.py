"""DurableProducer under a partial outage, against a fake client (no broker): the share of
requests of healthy partitions answered 503 while one partition (of 4) is unanswered.

    python -m bench.partial_outage [--module old_producer.py] [--mode silent|election]
        [--sick S] [--slow S] [--rates 10,50,100,200] [--seconds 4] [--timeout 1]

silent: the sick partition's batches are never answered while their client runs (short of
in-sync replicas, a silent leader: aiokafka retries without end). election: they fail at the
request timeout (dropped for want of a leader), spending the client's sequence, for --sick
seconds. --slow answers every other batch after that long (a busy cluster). --module loads
another version of switchboard/producer.py (git show REV:switchboard/producer.py > file)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import sys
from types import ModuleType
from typing import Any

from aiokafka.errors import NotLeaderForPartitionError, OutOfOrderSequenceNumber
from aiokafka.producer.message_accumulator import BatchBuilder

from switchboard.murmur2 import murmur2
from switchboard.records import OutRecord

TOPIC = "switchboard.raw.v1"
PARTITIONS = 4
SICK = 0


class Cluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))


class Client:
    def __init__(self) -> None:
        self.cluster = Cluster()

    def add_topic(self, topic: str) -> None:
        pass


class Sender:
    def __init__(self) -> None:
        self.sender_task: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Fake:
    mode = "silent"
    slow = 0.0
    sick_until = 0.0
    timeout_s = 1.0
    made: list[Fake] = []

    def __init__(self, **options: Any) -> None:
        self.client = Client()
        self._sender = Sender()
        self.pending: set[asyncio.Future[None]] = set()
        self.gaps: set[int] = set()
        Fake.made.append(self)

    async def start(self) -> None:
        await asyncio.sleep(0.02)

    async def stop(self) -> None:
        # aiokafka's stop waits for what it holds; its sender task cancelled ends that.
        waiting = set(self.pending) | {self._sender.sender_task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not self._sender.sender_task.done():
            self._sender.sender_task.set_result(None)

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(512 * 1024, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *,
                         partition: int) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self.pending.add(done)
        done.add_done_callback(self.pending.discard)
        sick = partition == SICK and loop.time() < Fake.sick_until
        if partition in self.gaps:
            loop.call_later(0.005, _fail, done, OutOfOrderSequenceNumber())
        elif sick and Fake.mode == "silent":
            pass  # retried without end: never answered while the client runs
        elif sick:  # leaderless: dropped at the request timeout, its sequence spent
            self.gaps.add(partition)
            loop.call_later(Fake.timeout_s, _fail, done, NotLeaderForPartitionError())
        else:
            loop.call_later(Fake.slow or random.uniform(0.002, 0.010), _ok, done)
        return done


def _ok(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)


def load(path: str | None) -> ModuleType:
    if path is None:
        import switchboard.producer as module
        return module
    spec = importlib.util.spec_from_file_location("old_producer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_producer"] = module
    spec.loader.exec_module(module)
    return module


async def run(module: ModuleType, mode: str, rate: float, seconds: float, sick_s: float,
              timeout_s: float, seed: int, verbose: bool = False) -> dict[str, Any]:
    random.seed(seed)
    Fake.mode, Fake.timeout_s, Fake.made, Fake.sick_until = mode, timeout_s, [], 0.0
    module.AIOKafkaProducer = Fake  # type: ignore[attr-defined]
    producer = module.DurableProducer("unused:9092", timeout_s=timeout_s)
    await producer.start()
    loop = asyncio.get_running_loop()
    await producer.publish([OutRecord(TOPIC, b"warm", b"warm-key")])
    Fake.sick_until = loop.time() + sick_s
    results: list[tuple[bool, bool, float]] = []  # sick partition, stored, seconds

    async def call(key: bytes) -> None:
        part = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
        started = loop.time()
        try:
            await producer.publish([OutRecord(TOPIC, b"v" * 200, key)])
            ok = True
        except module.PublishError as exc:
            ok = False
            if part != SICK and verbose:
                print("healthy failed:", round(loop.time() - started, 3), exc, flush=True)
        results.append((part == SICK, ok, loop.time() - started))

    calls = []
    started = loop.time()
    n = 0
    while loop.time() - started < seconds and n < rate * seconds * 2:
        n += 1
        calls.append(asyncio.ensure_future(call(b"key-%d" % random.randrange(10**9))))
        await asyncio.sleep(random.expovariate(rate))
    await asyncio.wait(calls, timeout=timeout_s * 10)
    stop_started = loop.time()
    await asyncio.wait_for(producer.stop(), timeout_s * 20)
    healthy = [r for r in results if not r[0]]
    sick = [r for r in results if r[0]]
    return {
        "healthy": len(healthy),
        "healthy_503": sum(1 for r in healthy if not r[1]),
        "sick": len(sick),
        "sick_503": sum(1 for r in sick if not r[1]),
        "healthy_p50_ms": 1000 * statistics.median(r[2] for r in healthy) if healthy else 0,
        "max_s": max((r[2] for r in results), default=0),
        "clients": len(Fake.made),
        "stop_s": loop.time() - stop_started,
        "buffered": producer._buffered,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--module")
    parser.add_argument("--mode", default="silent")
    parser.add_argument("--rates", default="10,50,100,200")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sick", type=float, default=1e9)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--verbose", action="store_true", help="print each healthy 503")
    args = parser.parse_args()
    module = load(args.module)
    Fake.slow = args.slow
    for rate in [float(r) for r in args.rates.split(",")]:
        for seed in range(args.seeds):
            out = asyncio.run(run(module, args.mode, rate, args.seconds, args.sick,
                                  args.timeout, seed, args.verbose))
            share = out["healthy_503"] / max(1, out["healthy"])
            print(f"{args.mode:8} rate={rate:5.0f} seed={seed} healthy 503 "
                  f"{out['healthy_503']}/{out['healthy']} ({share:.1%}) sick 503 "
                  f"{out['sick_503']}/{out['sick']} p50={out['healthy_p50_ms']:.1f}ms "
                  f"max={out['max_s']:.2f}s clients={out['clients']} "
                  f"stop={out['stop_s']:.2f}s buffered={out['buffered']}", flush=True)


if __name__ == "__main__":
    main()
