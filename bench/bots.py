"""End-to-end latency of a bot reply: inbound webhook POST -> ingest -> Kafka -> keyword bot
-> Kafka -> sender -> the provider (simulator) receiving the reply. p50/p99 at a fixed load.

Every piece runs as its own process, as in production: `serve`, `worker keywords`,
`worker sender`, `simulate`, plus the broker. The load is open-loop (fixed schedule).
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from bench.common import HOST, accounts_toml, child, kafka
from bench.loadgen import build_request, open_loop, percentile
from switchboard.localkafka import free_port
from switchboard.topics import MESSAGE_INBOUND, OUTBOUND

RATE = float(os.environ.get("BENCH_RATE", "200"))
SECONDS = 10.0
TARGET_P99_MS = 100.0
RULES = """
[accounts.bench-infobip]
[[accounts.bench-infobip.rules]]
keyword = "price"
reply = "Prices start at 10 EUR"
"""
AUTH = {"authorization": "Basic " + base64.b64encode(b"bench:bench-password-123").decode(),
        "content-type": "application/json"}


def inbound(contact: str) -> bytes:
    return orjson.dumps({"results": [{
        "event": "MO", "channel": "SMS", "sender": contact, "destination": "InfoSMS",
        "content": [{"type": "TEXT", "text": "price"}], "messageId": f"bench-mo-{contact}",
        "receivedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")}]})


async def offer_load(port: int, prefix: str, seconds: float) -> dict[str, float]:
    """POST inbound messages on a fixed schedule; returns contact -> when its POST was due.

    Every message comes from a new contact, so each needs its own reply. The raw-socket load
    generator keeps the client's own CPU out of the measurement.
    """
    total = int(RATE * seconds)
    contacts = [f"{prefix}{n:06d}" for n in range(total)]
    requests = iter([build_request(HOST, port, "/webhooks/infobip/bench-infobip",
                                   inbound(contact), AUTH) for contact in contacts])
    begin = time.time()
    result = await open_loop(HOST, port, requests, rate_per_s=RATE, duration_s=seconds)
    if result.ok != total:
        print(f"warning: {total - result.ok} inbound webhooks were not accepted: "
              f"{result.statuses}")
    return {contact: begin + n / RATE for n, contact in enumerate(contacts)}


async def received_times(sim: str, wanted: set[str], timeout_s: float = 120) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            sends = (await client.get(f"{sim}/_sim/sends",
                                      params={"account": "bench-infobip"})).json()["sends"]
            got = {s["to"]: datetime.fromisoformat(s["received_at"]).timestamp()
                   for s in sends if s["to"] in wanted}
            if len(got) >= len(wanted) or time.monotonic() > deadline:
                return got
            await asyncio.sleep(1)


async def record_times(bootstrap: str, topic: str, field: str) -> dict[str, float]:
    """contact -> Kafka timestamp (when the producer created the record) of its first record."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    times: dict[str, float] = {}
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000, max_records=5000)
            if not batch:
                return times
            for records in batch.values():
                for record in records:
                    value = orjson.loads(record.value)
                    times.setdefault(value.get(field) or "", record.timestamp / 1000)
    finally:
        await consumer.stop()


async def run(bootstrap: str, workdir: Path) -> int:
    sim_port, ingest_port = free_port(), free_port()
    ingest = f"http://{HOST}:{ingest_port}"
    sim = f"http://{HOST}:{sim_port}"
    (workdir / "accounts.toml").write_text(accounts_toml(sim_port))
    (workdir / "rules.toml").write_text(RULES)
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SWITCHBOARD_LOG_LEVEL": "WARNING",
           "SWITCHBOARD_ACCOUNTS_FILE": str(workdir / "accounts.toml"),
           "SWITCHBOARD_RULES_FILE": str(workdir / "rules.toml"),
           "SWITCHBOARD_PUBLIC_URL": ingest, "SWITCHBOARD_HTTP_PORT": str(ingest_port)}
    async with child(["serve", "--host", HOST], env, f"{ingest}/readyz"), \
            child(["simulate", "--port", str(sim_port)], env, f"{sim}/_sim/health"), \
            child(["worker", "sender"], env), child(["worker", "keywords"], env):
        await asyncio.sleep(5)  # both workers joined their groups
        warm = await offer_load(ingest_port, "+41750", 2.0)
        await received_times(sim, set(warm), timeout_s=30)
        started = await offer_load(ingest_port, "+41760", SECONDS)
        received = await received_times(sim, set(started))
    latencies = [(received[c] - t) * 1000 for c, t in started.items() if c in received]
    inbound_at = await record_times(bootstrap, MESSAGE_INBOUND.name, "from")
    command_at = await record_times(bootstrap, OUTBOUND.name, "to")
    hops: dict[str, list[float]] = {
        "webhook POST -> inbound event in Kafka": [], "inbound event -> reply command": [],
        "reply command -> provider receives it": []}
    for contact, posted in started.items():
        if contact in inbound_at and contact in command_at and contact in received:
            hops["webhook POST -> inbound event in Kafka"].append(inbound_at[contact] - posted)
            hops["inbound event -> reply command"].append(command_at[contact] - inbound_at[contact])
            hops["reply command -> provider receives it"].append(received[contact]
                                                                 - command_at[contact])
    for name, values in hops.items():
        ms = [v * 1000 for v in values]
        print(f"  {name:40} p50 {percentile(ms, 0.5):7.1f} ms  p99 {percentile(ms, 0.99):7.1f} ms")
    answered = len(latencies)
    print(f"\nbot reply latency at {RATE:.0f} inbound/s for {SECONDS:.0f}s: "
          f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms "
          f"(target p99 < {TARGET_P99_MS:.0f} ms); {answered}/{len(started)} answered")
    return 0 if answered == len(started) else 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp, \
            kafka(Path(tmp)) as bootstrap:
        return asyncio.run(run(bootstrap, Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main())
