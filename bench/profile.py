"""Where an ingest request's CPU goes, in one process, without a server or a broker.

Each stage of the webhook path is timed on the ingest benchmark's own delivery reports (each
one distinct, as there), beside the bare Starlette ceiling called the same way (ASGI, in
process) in the same run. The producer is a stand-in that does publish's own CPU work (sizing,
partitioning, appending to aiokafka's batch builder) without the round trip, so the figures
leave out uvicorn, the event loop's I/O and Kafka: served, every request costs more, which
bench.served measures next (both servers with uvicorn, ingest with the stand-in producer).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from starlette.requests import Request

from bench import ceiling, served
from bench.ingest import ACCOUNTS, WEBHOOK_PATH, delivery_report, webhook_headers
from ingest.app import create_app
from ingest.auth import SignedRequest, verify
from ingest.dedup import RecentRequests
from ingest.stored import event_records, fitted_raw
from ingest.webhooks import KEPT_HEADERS, WebhookHandler, new_id
from normalizers import WebhookRequest, normalize
from switchboard import heap
from switchboard.producer import MAX_BATCH_BYTES, DurableProducer
from switchboard.producer_placement import record_size
from switchboard.records import OutRecord, raw_envelope
from switchboard.settings import Settings

# Distinct reports per round: as in the benchmark, no request repeats one of its round (the
# duplicate table and the partitioner's cache of keys are emptied between rounds).
REQUESTS_PER_ROUND = 2000
ROUNDS = 7
ACCOUNT = ("infobip", "bench-infobip")
HANDLER = "  handler alone (no routing)"


class CpuOnlyProducer:
    """Does what DurableProducer.publish does before it waits for Kafka: size each record,
    choose its partition (murmur2 of its key), append it to a batch builder."""

    started = True

    def __init__(self) -> None:
        self._partitioner = DurableProducer("127.0.0.1:9")  # never started: _partition only
        self._batch = self._new_batch()

    @staticmethod
    def _new_batch() -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0)

    def forget(self) -> None:
        self._partitioner._hashes.clear()

    async def publish(self, records: Sequence[OutRecord]) -> None:
        sizes = [record_size(record) for record in records]
        if max(sizes) > MAX_BATCH_BYTES or sum(sizes) > MAX_BATCH_BYTES:
            raise AssertionError("the benchmark's records are small")
        for record in records:
            self._partitioner._partition(record.key, 6)
            if self._batch.append(timestamp=None, key=record.key, value=record.value,
                                  headers=record.headers) is None:
                self._batch = self._new_batch()
                self._batch.append(timestamp=None, key=record.key, value=record.value,
                                   headers=record.headers)


def _scope(body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8080"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode())
                for name, value in webhook_headers().items()]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "POST", "scheme": "http",
            "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000), "root_path": "",
            "path": WEBHOOK_PATH, "raw_path": WEBHOOK_PATH.encode(), "query_string": b"",
            "headers": headers, "state": {}}


def _receiver(body: bytes) -> Callable[[], Awaitable[MutableMapping[str, Any]]]:
    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


class _Statuses:
    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.seen[message["status"]] = self.seen.get(message["status"], 0) + 1


Stage = Callable[[int], Awaitable[object]]


async def _time_us(stage: Stage, reset: Callable[[], None], base: int) -> float:
    """The mean time per call over one round of new reports, from report number `base`."""
    reset()
    started = time.perf_counter()
    for n in range(base, base + REQUESTS_PER_ROUND):
        await stage(n)
    return (time.perf_counter() - started) / REQUESTS_PER_ROUND * 1e6


async def _fastest_us(stages: dict[str, tuple[Stage, Callable[[], None]]]) -> dict[str, float]:
    """Each stage's fastest round: the stages take turns round by round, so a burst of other
    work on a shared machine slows some rounds of each, and the fastest is the stage's own
    cost (other work only ever adds to a round). The first round warms up, uncounted."""
    rounds: dict[str, list[float]] = {name: [] for name in stages}
    for round_ in range(ROUNDS + 1):
        for name, (stage, reset) in stages.items():
            rounds[name].append(await _time_us(stage, reset, round_ * REQUESTS_PER_ROUND))
    return {name: min(times[1:]) for name, times in rounds.items()}


def _stages(handler: WebhookHandler, app: Any, statuses: _Statuses
            ) -> dict[str, tuple[Stage, Callable[[], None]]]:
    account = handler.accounts.get(*ACCOUNT)
    assert account is not None
    received_at = datetime.now(UTC)
    bodies = {n: delivery_report(n) for n in range((ROUNDS + 1) * REQUESTS_PER_ROUND)}
    scopes = {n: _scope(body) for n, body in bodies.items()}
    headers = {k.decode(): v.decode() for k, v in scopes[0]["headers"]}
    producer = handler.producer
    assert isinstance(producer, CpuOnlyProducer)

    def webhook(n: int) -> WebhookRequest:
        return WebhookRequest(provider=account.provider, account=account.name, body=bodies[n],
                              received_at=received_at, raw_id=new_id(),
                              content_type="application/json", headers=headers)

    def reset() -> None:
        handler.recent = RecentRequests()
        producer.forget()

    def envelope(n: int) -> dict[str, Any]:
        return raw_envelope(raw_id=new_id(), provider=account.provider, account=account.name,
                            method="POST", path=WEBHOOK_PATH, query="",
                            content_type="application/json",
                            headers={h: headers[h] for h in KEPT_HEADERS if h in headers},
                            body=bodies[n], received_at=received_at)

    webhooks = {n: webhook(n) for n in bodies}
    events = {n: normalize(webhooks[n]) for n in bodies}
    records = {n: [fitted_raw(envelope(n), received_at)[1], *event_records(events[n], 600)]
               for n in bodies}

    async def ceiling_app(n: int) -> None:
        await ceiling.app(scopes[n], _receiver(bodies[n]), statuses.send)

    async def ingest_app(n: int) -> None:
        await app(scopes[n], _receiver(bodies[n]), statuses.send)

    async def handle(n: int) -> None:
        await handler.handle(Request(dict(scopes[n], path_params={
            "provider": ACCOUNT[0], "account": ACCOUNT[1]}), _receiver(bodies[n])))

    async def auth(n: int) -> None:
        verify(SignedRequest(method="POST", url="", query="", headers=headers, body=b"",
                             now=time.time()), account.auth)

    async def raw(n: int) -> None:
        fitted_raw(envelope(n), received_at)

    async def fingerprint(n: int) -> None:
        RecentRequests.fingerprint(account.provider, account.name, "POST", "application/json",
                                   "", "", bodies[n])

    async def normalized(n: int) -> None:
        normalize(webhooks[n])

    async def stored(n: int) -> None:
        event_records(events[n], len(bodies[n]))

    async def publish(n: int) -> None:
        await producer.publish(records[n])

    return {
        "ceiling: bare Starlette, ASGI": (ceiling_app, reset),
        "ingest: whole app, ASGI": (ingest_app, reset),
        HANDLER: (handle, reset),
        "  auth (Basic)": (auth, reset),
        "  raw record": (raw, reset),
        "  duplicate fingerprint": (fingerprint, reset),
        "  normalize": (normalized, reset),
        "  event records": (stored, reset),
        "  publish (CPU part)": (publish, reset),
    }


async def run(accounts_file: Path) -> int:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", accounts_file=accounts_file)
    app = create_app(settings)
    handler: WebhookHandler = app.state.handler
    handler.producer = CpuOnlyProducer()  # type: ignore[assignment]
    statuses = _Statuses()
    stages = _stages(handler, app, statuses)
    heap.settle()  # as serve does once started
    results = await _fastest_us(stages)
    baseline = results["ceiling: bare Starlette, ASGI"]
    print(f"{'stage':32} {'µs/request':>10} {'x ceiling':>9}")
    for name, us in results.items():
        print(f"{name:32} {us:>10.1f} {us / baseline:>9.2f}")
    whole, handled = results["ingest: whole app, ASGI"], results[HANDLER]
    parts = sum(us for name, us in results.items() if name.startswith("  ") and
                name != HANDLER)
    print(f"\nStarlette's routing and middleware, and sending the answer: {whole - handled:.1f} µs."
          f"\nThe stages timed alone sum to {parts:.1f} µs of the handler's {handled:.1f}: in the "
          "whole path they run on colder caches, and the handler's own glue is the rest.")
    print(f"in-process ratio ceiling/ingest: {baseline / whole:.2f} (served, uvicorn and "
          f"Kafka's round trip add to both sides or to ingest only); statuses "
          f"{dict(sorted(statuses.seen.items()))}")
    return 0 if set(statuses.seen) == {200} else 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="switchboard-profile-") as tmp:
        accounts = Path(tmp) / "accounts.toml"
        accounts.write_text(ACCOUNTS)
        in_process = asyncio.run(run(accounts))
        return served.main(accounts) or in_process


if __name__ == "__main__":
    raise SystemExit(main())
