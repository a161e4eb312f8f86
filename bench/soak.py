"""A bounded soak: a whole Switchboard (`serve`, `worker keywords`, `worker sender`, the
simulator, a real broker, all on 127.0.0.1) under a steady mixed load for minutes, to see
whether memory stays flat and nothing is lost. Tests run seconds; leaks and unbounded caches
show over many minutes.

The load: signed webhooks of the example accounts with an outbound table (one per provider),
half inbound messages (each from a new contact: PRICE, HELP, other words; some contacts send
STOP, PRICE, START, PRICE a few seconds apart), half Infobip delivery reports. Every 15 s each
process's RSS is read from /proc. At the end: RSS at a quarter of the run (after warm-up) and
at its end, per process, with its CPU between; and conservation, which sets the exit status
(memory is only reported: the machine is noisy): every 2xx is a raw record in Kafka, every
message that should get a reply got exactly one at the simulator, no 5xx (Kafka is never away).

SOAK_TRACEMALLOC=sender,keywords (process names) runs those with tracemalloc and prints, at the
end, the allocation sites that grew between the quarter mark and the end (slow: diagnosis only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import HOST, child, kafka
from bench.ingest import delivery_report
from bench.loadgen import LoadResult, build_request, open_loop, percentile
from bench.soak_memory import Samples, Tracer, broker_pid, rss_mb
from simulator.app import SIMULATED
from simulator.base import Inbound
from simulator.recorder import MAX_RECORDS
from simulator.webhooks import signed_headers
from switchboard.accounts import Account, load_accounts
from switchboard.localkafka import free_port
from switchboard.topics import RAW, partitions_of

EXAMPLE_ACCOUNTS = Path(__file__).resolve().parent.parent / "examples" / "accounts.toml"
# One open_loop per chunk: its tasks and latencies are dropped as it ends, not kept all run.
CHUNK_S = 15.0
MAX_MINUTES, MAX_RATE = 30.0, 1000.0
# The simulator keeps up with a soak here (3 min at 200 req/s: none held at the end), but on a
# slower machine its webhooks would be dropped past its default 10,000 messages held: held
# instead, they arrive late, and the soak checks what Switchboard keeps, not the simulator's
# speed (its RSS shows what it holds).
SIMULATOR_BACKLOG = {"SWITCHBOARD_SIMULATOR_WEBHOOK_QUEUE": "1000000"}
DRAIN_S = 180.0  # after the load, for the last replies to reach the simulator
WAVE_S = 3.0  # between one opting-out contact's messages: each is stored before the next
# An opting-out contact's messages and the replies each should get (none while opted out).
SCRIPT = (("STOP", 1), ("price", 0), ("START", 1), ("price", 1))
ONE_SHOTS = (("price", 1), ("HELP", 1), ("hello there", 1))
RULES = """
[accounts.{name}]
help_text = "Soak: reply PRICE. Reply STOP to opt out."
stop_confirmation = "You are unsubscribed. Reply START to subscribe again."
start_confirmation = "Welcome back. Reply STOP to opt out."
fallback = "Sorry, reply HELP for the keywords."

[[accounts.{name}.rules]]
keyword = "price"
reply = "Prices start at 10 EUR"
"""
SENDS = {"switchboard_sender_sends_total": "outcome"}
BOT_COUNTERS = {"switchboard_bot_replies_total": "purpose",
                "switchboard_bot_replies_limited_total": "",
                "switchboard_bot_compliance_replies_limited_total": ""}


def soak_accounts(sim_port: int) -> str:
    """The example accounts, sending to this run's simulator, with no send rate limit (20/s by
    default: the replies would queue behind it and the soak measure the limit)."""
    text = EXAMPLE_ACCOUNTS.read_text().replace("http://127.0.0.1:8090",
                                                f"http://{HOST}:{sim_port}")
    return re.sub(r"^(\[accounts\.[\w-]+\.outbound\])$", r"\1\nrate_per_s = 100000\nburst = 1000",
                  text, flags=re.MULTILINE)


@dataclass
class Offered:
    """What the load generator sent so far, and the replies it should bring."""

    requests: int = 0
    inbound: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)  # contact digits -> replies


def _digits(address: str) -> str:
    return "".join(c for c in address if c.isdigit())


def load(port: int, accounts: list[Account], rate: float, offered: Offered
         ) -> Iterator[bytes]:
    """Signed requests, built as they are due; every other one a contact's message."""
    agent = f"switchboard-soak-{os.getpid()}"
    run = os.getpid() % 1000
    wave = max(20, int(rate / 2 * WAVE_S))  # inbound messages per wave
    lanes = max(1, wave // 20)  # opting-out contacts starting each wave
    infobip = next(a for a in accounts if a.provider == "infobip")
    n = 0
    while True:
        if n % 2:
            account, body, kind = infobip, delivery_report(n), "application/json"
        else:
            slot = n // 2
            wave_no, place = divmod(slot, wave)
            step, lane = divmod(place, lanes)
            if step < len(SCRIPT) and wave_no >= step:
                contact_no = (wave_no - step) * lanes + lane
                contact, (text, replies) = f"+4178{run:03d}{contact_no:06d}", SCRIPT[step]
            else:
                contact_no = slot
                contact, (text, replies) = f"+4179{run:03d}{slot:06d}", ONE_SHOTS[slot % 3]
            account = accounts[contact_no % len(accounts)]
            hook = SIMULATED[account.provider].inbound_webhook(
                account, Inbound(sender=contact, text=text, message_id=f"soak-{agent}-{n}"),
                at=datetime.now(UTC))
            body, kind = hook.body, hook.content_type
            offered.inbound[text] += 1
            offered.expected[_digits(contact)] += replies
        path = f"/webhooks/{account.provider}/{account.name}"
        headers = {"content-type": kind, "user-agent": agent,
                   **signed_headers(account, f"http://{HOST}:{port}{path}", body)}
        offered.requests += 1
        n += 1
        yield build_request(HOST, port, path, body, headers)


async def offer(port: int, requests: Iterator[bytes], rate: float, seconds: float,
                on_quarter: asyncio.Event) -> tuple[dict[int, int], list[float]]:
    """The load in CHUNK_S pieces: statuses in all, and each piece's p99 (ms)."""
    statuses: Counter[int] = Counter()
    p99s: list[float] = []
    began = time.monotonic()
    while (left := seconds - (time.monotonic() - began)) > 1:
        result: LoadResult = await open_loop(HOST, port, requests, rate_per_s=rate,
                                             duration_s=min(CHUNK_S, left))
        statuses.update(result.statuses)
        p99s.append(percentile(result.latencies_ms, 0.99))
        if time.monotonic() - began >= seconds / 4:
            on_quarter.set()
    return dict(statuses), p99s


def metric_sums(text: str, names: dict[str, str]) -> dict[str, float]:
    """Prometheus text: the series of each metric in `names` summed by the label it names
    (`name:value`; the accounts and workers added up)."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        if name in names:
            found = names[name] and re.search(rf'\b{names[name]}="([^"]*)"', labels)
            key = f"{name}:{found.group(1)}" if found else name
            sums[key] = sums.get(key, 0.0) + float(value)
    return sums


async def scrape(client: httpx.AsyncClient, url: str, names: dict[str, str]
                 ) -> dict[str, float]:
    try:
        return metric_sums((await client.get(url)).text, names)
    except httpx.HTTPError:
        return {}


async def drain(client: httpx.AsyncClient, sender_metrics: str, expected: int, limit_s: float
                ) -> tuple[float, bool]:
    """Wait until the sender has sent `expected` commands and sends no more for 10 s, at most
    `limit_s`: the seconds it took, and whether it settled (not: a backlog, or a loss)."""
    began, last, still_since = time.monotonic(), -1.0, time.monotonic()
    while time.monotonic() - began < limit_s:
        sent = sum((await scrape(client, sender_metrics, SENDS)).values())
        if sent != last:
            last, still_since = sent, time.monotonic()
        elif sent >= expected and time.monotonic() - still_since >= 10:
            return time.monotonic() - began, True
        await asyncio.sleep(2)
    return time.monotonic() - began, False


async def received(client: httpx.AsyncClient, sim: str, accounts: list[Account],
                   wanted: Counter[str]) -> Counter[str]:
    """Replies the simulator accepted, per contact of ours (digits: providers spell them
    differently)."""
    got: Counter[str] = Counter()
    for account in accounts:
        sends = (await client.get(f"{sim}/_sim/sends", params={"account": account.name}
                                  )).json()["sends"]
        got.update(d for send in sends if (d := _digits(send["to"])) in wanted)
    return got


async def raw_ends(bootstrap: str) -> dict[TopicPartition, int]:
    partitions = [TopicPartition(RAW.name, p) for p in await partitions_of(bootstrap, RAW.name)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def raw_count(bootstrap: str, since: dict[TopicPartition, int], marker: bytes) -> int:
    """Raw records written since `since` whose kept headers carry our user agent."""
    ends = await raw_ends(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    count, deadline = 0, time.monotonic() + 300
    try:
        consumer.assign(list(ends))
        for tp in ends:
            consumer.seek(tp, since.get(tp, 0))
        while time.monotonic() < deadline and any(
                [await consumer.position(tp) < end for tp, end in ends.items()]):
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            count += sum(marker in record.value for records in batch.values()
                         for record in records)
        return count
    finally:
        await consumer.stop()


async def run(bootstrap: str, workdir: Path, minutes: float, rate: float) -> int:
    sim_port, ingest_port, sender_port, bot_port = (free_port() for _ in range(4))
    ingest, sim = f"http://{HOST}:{ingest_port}", f"http://{HOST}:{sim_port}"
    (workdir / "accounts.toml").write_text(soak_accounts(sim_port))
    accounts = [a for a in load_accounts(workdir / "accounts.toml") if a.outbound]
    (workdir / "rules.toml").write_text("".join(RULES.format(name=a.name) for a in accounts))
    tracer = Tracer(workdir)
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SWITCHBOARD_LOG_LEVEL": "WARNING",
           "SWITCHBOARD_ACCOUNTS_FILE": str(workdir / "accounts.toml"),
           "SWITCHBOARD_RULES_FILE": str(workdir / "rules.toml"),
           "SWITCHBOARD_PUBLIC_URL": ingest, "SWITCHBOARD_HTTP_PORT": str(ingest_port)}
    offered, stop, quarter = Offered(), asyncio.Event(), asyncio.Event()
    seconds = minutes * 60
    async with child(["serve", "--host", HOST], env | tracer.env("serve"), f"{ingest}/readyz"
                     ) as serve, \
            child(["simulate", "--port", str(sim_port), "--ingest-url", ingest],
                  env | tracer.env("simulate") | SIMULATOR_BACKLOG,
                  f"{sim}/_sim/health") as simulate, \
            child(["worker", "sender"], env | tracer.env("sender")
                  | {"SWITCHBOARD_METRICS_PORT": str(sender_port)},
                  f"http://{HOST}:{sender_port}/readyz") as sender, \
            child(["worker", "keywords"], env | tracer.env("keywords")
                  | {"SWITCHBOARD_METRICS_PORT": str(bot_port)},
                  f"http://{HOST}:{bot_port}/readyz") as bot, \
            httpx.AsyncClient(timeout=60) as client:
        await asyncio.sleep(3)  # both workers have their partitions
        pids = {"serve": serve.pid, "simulate": simulate.pid, "sender": sender.pid,
                "keywords": bot.pid}
        if (jvm := broker_pid(workdir)) is not None:
            pids["kafka"] = jvm
        since = await raw_ends(bootstrap)
        samples = Samples(pids)
        sampling = asyncio.create_task(samples.every(offered, stop))
        requests = load(ingest_port, accounts, rate, offered)
        loading = asyncio.create_task(offer(ingest_port, requests, rate, seconds, quarter))
        await quarter.wait()
        quarter_row, quarter_n = len(samples.rows), offered.requests
        samples.take(offered)
        if tracer.names:
            await tracer.snapshot(pids, 1)
        statuses, p99s = await loading
        stop.set()
        await sampling
        samples.take(offered)
        if tracer.names:
            await tracer.snapshot(pids, 2)
        # Traced processes are slower: give their backlog longer.
        drained_s, settled = await drain(client, f"http://{HOST}:{sender_port}/metrics",
                                         sum(offered.expected.values()),
                                         DRAIN_S * (3 if tracer.names else 1))
        got = await received(client, sim, accounts, offered.expected)
        webhooks = (await client.get(f"{sim}/_sim/webhooks")).json()
        counters = {**await scrape(client, f"{ingest}/metrics",
                                   {"switchboard_ingest_requests_total": "outcome"}),
                    **await scrape(client, f"http://{HOST}:{bot_port}/metrics", BOT_COUNTERS),
                    **await scrape(client, f"http://{HOST}:{sender_port}/metrics", SENDS)}
        after_drain = {name: rss_mb(pid) for name, pid in pids.items()}
    stored = await raw_count(bootstrap, since, f'"user-agent":"switchboard-soak-{os.getpid()}"'
                             .encode())

    print(f"\nsoak: {minutes:g} min at {rate:g} req/s offered: {offered.requests} requests "
          f"({sum(offered.inbound.values())} inbound messages {dict(offered.inbound)}, the rest "
          f"Infobip delivery reports), across {', '.join(a.name for a in accounts)}")
    print(f"statuses {dict(sorted(statuses.items()))}; p99 per {CHUNK_S:.0f} s (ms): "
          + " ".join(f"{p:.0f}" for p in p99s))
    state = "settled" if settled else "NOT settled: the sender still had a backlog"
    print(samples.table(quarter_row) + f"\nafter the drain ({drained_s:.0f} s, {state}): "
          + ", ".join(f"{n} {v:.0f} MB" for n, v in after_drain.items() if v is not None))
    print("counters (by outcome or purpose, non-zero): " + ", ".join(
        f"{series} {value:g}" for series, value in sorted(counters.items()) if value))
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    expected = sum(offered.expected.values())
    missing = sum((offered.expected - got).values())
    extra = sum((got - offered.expected).values())
    checks = {
        f"2xx answers {ok} == raw records of this run {stored}": ok == stored,
        f"replies expected {expected} == received by the simulator {sum(got.values())} "
        f"(missing {missing}, extra {extra})": missing == 0 and extra == 0,
        f"5xx or unanswered: {server_errors} (Kafka was never away)": server_errors == 0,
        f"simulator webhooks to ingest dropped: {webhooks.get('failed')} "
        f"(sent {webhooks.get('sent')}, retried {webhooks.get('retried')}, still queued "
        f"{webhooks.get('pending')})":
            webhooks.get("failed") == 0,
    }
    print("conservation:")
    for check, passed in checks.items():
        print(f"  {'ok  ' if passed else 'FAIL'} {check}")
    tracer.report(pids, offered.requests - quarter_n)
    return 0 if all(checks.values()) else 1


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--minutes", type=float, default=3.0, help="of load (default 3)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="webhook requests per second offered (default 200)")
    args, _ = parser.parse_known_args(argv)  # the benchmarks' names are not ours
    if not (0 < args.minutes <= MAX_MINUTES and 0 < args.rate <= MAX_RATE):
        parser.error(f"--minutes in (0, {MAX_MINUTES:g}], --rate in (0, {MAX_RATE:g}]")
    if args.minutes * 60 * args.rate / 2 > MAX_RECORDS:
        # Half are messages, at most one reply each: more and the replies could not be counted.
        parser.error(f"at most {2 * MAX_RECORDS:,} requests (--minutes times --rate times 60): "
                     f"the simulator keeps its last {MAX_RECORDS:,} sends")
    return args


def main() -> int:
    args = options(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp, \
            kafka(Path(tmp)) as bootstrap:
        return asyncio.run(run(bootstrap, Path(tmp), args.minutes, args.rate))


if __name__ == "__main__":
    raise SystemExit(main())
