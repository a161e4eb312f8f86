"""End-to-end latency of a bot reply: inbound webhook POST -> ingest -> Kafka -> keyword bot
-> Kafka -> sender -> the provider (simulator) receiving the reply. p50/p99 at a fixed load.

Every piece runs as its own process, as in production: `serve`, `worker keywords`,
`worker sender`, `simulate`, plus the broker. The load is open-loop (fixed schedule).
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from bench.common import HOST, accounts_toml, child, kafka, percentile
from switchboard.localkafka import free_port

RATE = 200.0
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


async def offer_load(url: str, prefix: str, seconds: float) -> dict[str, float]:
    """POST inbound messages on a fixed schedule; returns contact -> time the POST started.

    Every message comes from a new contact, so each needs its own reply.
    """
    started: dict[str, float] = {}
    total = int(RATE * seconds)
    begin = time.time()
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
        async def one(n: int) -> None:
            contact = f"{prefix}{n:06d}"
            started[contact] = time.time()
            response = await client.post(url, content=inbound(contact), headers=AUTH)
            if response.status_code != 200:
                started.pop(contact, None)

        tasks = []
        for n in range(total):
            delay = begin + n / RATE - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return started


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
        url = f"{ingest}/webhooks/infobip/bench-infobip"
        warm = await offer_load(url, "+41750", 2.0)
        await received_times(sim, set(warm), timeout_s=30)
        started = await offer_load(url, "+41760", SECONDS)
        received = await received_times(sim, set(started))
    latencies = [(received[c] - t) * 1000 for c, t in started.items() if c in received]
    answered = len(latencies)
    print(f"bot reply latency at {RATE:.0f} inbound/s for {SECONDS:.0f}s: "
          f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms "
          f"(target p99 < {TARGET_P99_MS:.0f} ms); {answered}/{len(started)} answered")
    return 0 if answered == len(started) else 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp, \
            kafka(Path(tmp)) as bootstrap:
        return asyncio.run(run(bootstrap, Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main())
