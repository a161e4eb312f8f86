"""A real sender worker while its broker answers nothing for 30 s (paused: connections open,
nothing answered, as in a network partition or a JVM's long pause), sends in flight as it
pauses: once Kafka answers it goes on by itself; no command reaches the provider twice, and
every command gets its result."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from consumers import kafka_watch
from consumers.workers import sender_worker
from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.records import command_record
from switchboard.settings import Settings
from switchboard.topics import OUTBOUND_RESULTS
from tests.integration.processes import own_broker, paused
from tests.integration.stack import StackWatcher, isolated_prefix, results_for, stack_topics
from tests.kafka_helpers import collect_until, publish
from tests.provider_servers import ANSWER

COMMANDS = 60
PAUSED_S = 30.0
SETTLED_S = 2.0
ANSWER_AFTER_S = 0.5


class SlowProvider:
    """Answers every send as Infobip does, ANSWER_AFTER_S after it has read it; counts the
    sends per destination number (one per command here)."""

    def __init__(self) -> None:
        self.sends: Counter[str] = Counter()
        self.base_url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = orjson.loads(await reader.readexactly(length))
                for message in body["messages"]:
                    for destination in message["destinations"]:  # Infobip's: no '+'
                        self.sends[destination["to"].lstrip("+")] += 1
                await asyncio.sleep(ANSWER_AFTER_S)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SlowProvider]:
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with server:
            yield self
            server.close()


async def test_a_paused_broker_sends_nothing_twice_and_loses_no_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(kafka_watch, "KAFKA_SILENT_AFTER_S", 5.0)
    caplog.set_level("INFO")
    account = f"paused-{uuid.uuid4().hex[:8]}"
    async with own_broker(tmp_path) as broker, SlowProvider().running() as provider:
        assert broker.process is not None
        bootstrap = broker.bootstrap_servers
        accounts = parse_accounts({"accounts": {account: {
            "provider": "infobip",
            "auth": {"scheme": "basic", "username": "ib", "secrets": ["paused-webhook-pass"]},
            "outbound": {"base_url": provider.base_url, "api_key": "paused-api-key",
                         "sender": "InfoSMS", "rate_per_s": 1000, "burst": 1000,
                         "timeout_s": 30}}}})
        prefix = isolated_prefix()
        settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_name_prefix=prefix)
        kafka = await stack_topics(bootstrap, prefix)
        commands = [OutboundCommand(id=f"cmd-{uuid.uuid4()}", account=account,
                                    to=f"+4179100{n:04d}", text="Hello",
                                    created_at=datetime.now(UTC)) for n in range(COMMANDS)]
        async with sender_worker(settings, accounts) as runtime:
            running = asyncio.create_task(runtime.run())
            try:
                await asyncio.wait_for(runtime.ready.wait(), 60)
                async with StackWatcher(bootstrap, prefix, (OUTBOUND_RESULTS.name,)) as watcher:
                    before = await watcher.snapshot()
                    await publish(kafka, [command_record(c, "infobip") for c in commands])
                    for _ in range(300):  # bounded: 30 s
                        if sum(provider.sends.values()) >= 5:
                            break
                        await asyncio.sleep(0.1)
                    assert provider.sends, "nothing sent before the pause"
                    with paused(broker):
                        # Sends whose mark Kafka acknowledged before it paused, and requests
                        # already written, reach the provider within this: counted before.
                        await asyncio.sleep(SETTLED_S)
                        paused_at = sum(provider.sends.values())
                        await asyncio.sleep(PAUSED_S - SETTLED_S)
                        during = sum(provider.sends.values())
                        unready = runtime.problem()
                    resumed = time.monotonic()
                    found = await collect_until(
                        watcher, before,
                        lambda f: all(results_for(f, c.id) for c in commands), timeout_s=150)
                    took_s = time.monotonic() - resumed
                    await asyncio.sleep(3)  # anything written twice is written by now
                    found = await watcher.records_since(before)
            finally:
                runtime.stop()
                await asyncio.wait_for(running, 60)
    gc.collect()  # asyncio says an exception never retrieved as its task is collected
    # aiokafka's commit requests left out by commits given up on during the pause, failed
    # once the broker answered (the member gone from the group): retrieved, said as commits.
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"], \
        [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    results = {c.id: [(r["status"], r["error"]["code"] if r["error"] else None)
                      for r in results_for(found, c.id)] for c in commands}
    # At most once: no send left while its pending mark could not be stored, and none twice.
    assert during == paused_at, (paused_at, during)
    assert max(provider.sends.values()) == 1, provider.sends
    assert (unready or "").startswith("Kafka unreachable: no fetch answered for "), unready
    said = [r.msg.get("event") for r in caplog.records if isinstance(r.msg, dict)]
    assert said.count("kafka is not answering the worker") == 1
    assert said.count("kafka answers the worker again") == 1
    assert took_s < 60, f"the results came {took_s:.0f} s after the broker answered"
    # One result each, written once, accepted; each command sent once. A command whose pending
    # mark was being stored as the broker paused saw that store time out (PublishError:
    # nothing sent), and the broker stored the mark once it answered: the retry, or the
    # rebalance's redelivery, found it pending and reported outcome_unknown ('its sender was
    # killed mid-call') for a message no provider had, 8 of 60 in each run, before the sender
    # knew its own marks from those a call followed.
    assert all(len(outcomes) == 1 for outcomes in results.values()), results
    assert all(outcomes == [("accepted", None)] for outcomes in results.values()), results
    assert all(provider.sends[c.to.lstrip("+")] == 1 for c in commands), provider.sends
