"""Kafka goes away mid-traffic: ingest answers 503 (never 2xx), then recovers; nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from switchboard.accounts import parse_accounts
from tests.integration.conftest import TEST_ACCOUNTS, start_ingest
from tests.integration.processes import own_broker
from tests.integration.webhooks import basic, infobip_report
from tests.kafka_helpers import raw_message_ids


async def _post(client: httpx.AsyncClient, url: str, message_id: str) -> int:
    response = await client.post(url, content=infobip_report(message_id), headers=basic())
    return response.status_code


def _events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.msg.get("event", "") for r in caplog.records if isinstance(r.msg, dict)]


async def test_broker_outage_gives_503s_then_recovers_without_loss(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with own_broker(tmp_path) as broker:
        accounts = parse_accounts({"accounts": {"it-infobip": TEST_ACCOUNTS["it-infobip"]}})
        server, task = await start_ingest(broker.bootstrap_servers, accounts,
                                          produce_timeout_s=2.0)
        url = server.url("infobip", "it-infobip")
        answered: dict[str, int] = {}
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                for _ in range(5):
                    message_id = f"before-{uuid.uuid4()}"
                    answered[message_id] = await _post(client, url, message_id)
                assert set(answered.values()) == {200}

                await asyncio.to_thread(broker.stop)
                during = {}
                for _ in range(4):
                    message_id = f"during-{uuid.uuid4()}"
                    during[message_id] = await _post(client, url, message_id)
                assert set(during.values()) == {503}, during
                answered |= during

                await asyncio.to_thread(broker.start)
                recovered = False
                for _ in range(30):  # bounded: up to ~60 s for the producer to reconnect
                    message_id = f"after-{uuid.uuid4()}"
                    answered[message_id] = await _post(client, url, message_id)
                    if answered[message_id] == 200:
                        recovered = True
                        break
                    await asyncio.sleep(1)
                assert recovered, "ingest did not recover after Kafka came back"
                for _ in range(5):
                    message_id = f"after-{uuid.uuid4()}"
                    answered[message_id] = await _post(client, url, message_id)
                    assert answered[message_id] == 200
        finally:
            server.server.should_exit = True
            await task

        assert set(answered.values()) <= {200, 503}, "only success or retry-later, never else"
        said = _events(caplog)  # the outage and the recovery, each once
        assert said.count("kafka is not taking records") == 1, said
        assert said.count("kafka is taking records again") == 1, said
        stored = await raw_message_ids(broker.bootstrap_servers)
        acknowledged = {m for m, status in answered.items() if status == 200}
        assert acknowledged <= stored, f"2xx but not in Kafka: {acknowledged - stored}"


async def test_a_stalled_broker_gets_503s_within_the_produce_timeout(tmp_path: Path) -> None:
    """A broker that takes connections and answers nothing (paused, a GC pause, a network
    partition): each webhook gets its 503 within SWITCHBOARD_PRODUCE_TIMEOUT_S, a round trip
    in flight or not, well before Webex Connect gives up at 10 s; once the broker answers,
    ingest stores again without a restart."""
    async with own_broker(tmp_path) as broker:
        accounts = parse_accounts({"accounts": {"it-infobip": TEST_ACCOUNTS["it-infobip"]}})
        server, task = await start_ingest(broker.bootstrap_servers, accounts)
        url = server.url("infobip", "it-infobip")
        assert broker.process is not None
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                assert await _post(client, url, f"before-{uuid.uuid4()}") == 200

                async def timed() -> tuple[int, float, str | None]:
                    started = time.monotonic()
                    response = await client.post(url, content=infobip_report(
                        f"stalled-{uuid.uuid4()}"), headers=basic())
                    return (response.status_code, time.monotonic() - started,
                            response.headers.get("retry-after"))

                broker.process.send_signal(signal.SIGSTOP)
                try:
                    first = asyncio.gather(*(timed() for _ in range(3)))
                    await asyncio.sleep(2)  # a second group, while the first is in flight
                    answers = await asyncio.gather(first, timed())
                finally:
                    broker.process.send_signal(signal.SIGCONT)
                for status, elapsed, retry_after in [*answers[0], answers[1]]:
                    assert (status, retry_after) == (503, "5")
                    assert elapsed < 6.5, elapsed
                # Not at once either: the first round trip waited for Kafka, its request for
                # the whole timeout. Kafka had stored a record lately, so at half the timeout
                # its batch is taken for its partition's trouble, left to end by itself, and
                # the requests behind it, of that partition, get their 503 then (the producer's
                # round trips of other partitions would go on).
                assert max(elapsed for _, elapsed, _ in answers[0]) > 4.5, answers
                assert min(elapsed for _, elapsed, _ in answers[0]) > 2.0, answers

                stored = False
                for _ in range(30):  # bounded: the client's retries land, or it is replaced
                    if await _post(client, url, f"after-{uuid.uuid4()}") == 200:
                        stored = True
                        break
                    await asyncio.sleep(1)
                assert stored, "ingest did not store again once the broker answered"
        finally:
            server.server.should_exit = True
            await task


async def test_while_kafka_stores_nothing_a_request_gets_its_503_at_once_beside_a_round_trip(
        tmp_path: Path) -> None:
    """Once a round trip has stored nothing (the broker stopped), a request arriving while the
    next round trip is out gets its 503 at once: it waited out the whole produce timeout
    behind that round trip for the same 503. The round trips go on, so ingest stores again,
    with 200s, once the broker is back."""
    timeout_s = 4.0
    async with own_broker(tmp_path) as broker:
        accounts = parse_accounts({"accounts": {"it-infobip": TEST_ACCOUNTS["it-infobip"]}})
        server, task = await start_ingest(broker.bootstrap_servers, accounts,
                                          produce_timeout_s=timeout_s)
        url = server.url("infobip", "it-infobip")
        answered: dict[str, int] = {}
        try:
            async with httpx.AsyncClient(timeout=30) as client:

                async def timed() -> tuple[httpx.Response, float]:
                    message_id = f"fast-{uuid.uuid4()}"
                    started = time.monotonic()
                    response = await client.post(url, content=infobip_report(message_id),
                                                 headers=basic())
                    answered[message_id] = response.status_code
                    return response, time.monotonic() - started

                assert (await timed())[0].status_code == 200
                await asyncio.to_thread(broker.stop)
                fast: httpx.Response | None = None
                for _ in range(10):  # bounded: each turn is one round trip, ~timeout_s
                    probe = asyncio.ensure_future(timed())
                    await asyncio.sleep(1)  # its round trip is out
                    beside, elapsed = await timed()
                    assert beside.status_code == 503
                    await probe
                    if elapsed < timeout_s / 2:  # at once; joining, it waits ~timeout_s
                        fast = beside
                        break
                assert fast is not None, "a request beside a failing round trip waited it out"
                assert fast.headers.get("retry-after") == "5"
                assert fast.json()["error"] == "storage_unavailable"
                assert set(answered.values()) - {200} == {503}

                await asyncio.to_thread(broker.start)
                for _ in range(60):  # bounded: ~60 s for the producer to reconnect
                    if (await timed())[0].status_code == 200:
                        break
                    await asyncio.sleep(1)
                else:
                    raise AssertionError("ingest did not store again after Kafka came back")
        finally:
            server.server.should_exit = True
            await task

        stored = await raw_message_ids(broker.bootstrap_servers)
        acknowledged = {m for m, status in answered.items() if status == 200}
        assert acknowledged <= stored, f"2xx but not in Kafka: {acknowledged - stored}"
