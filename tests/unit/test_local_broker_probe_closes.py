"""A readiness probe closes each Kafka client it made, also one whose start failed or was
cancelled: wait_until_usable gives a probe up (wait_for) and tries again, and a client left
open (connections, its metadata task) was left behind once per probe."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from switchboard import clients
from switchboard.localkafka import readiness

STAGES = ("admin", "producer", "consumer")


class Probe:
    """What the fake clients did; `failing` is the client whose start fails, `how` how."""

    def __init__(self, failing: str, how: str) -> None:
        self.failing, self.how = failing, how
        self.closed: list[str] = []
        self.starting = asyncio.Event()
        self.sent = b""


class FakeClient:
    role = ""
    probe: Probe

    def __init__(self, **options: Any) -> None:
        pass

    async def start(self) -> None:
        if self.probe.failing != self.role:
            return
        self.probe.starting.set()
        if self.probe.how == "raises":
            raise ConnectionRefusedError("connection refused")
        await asyncio.Event().wait()  # a silent broker: until cancelled

    async def _closed(self) -> None:
        self.probe.closed.append(self.role)


class FakeAdmin(FakeClient):
    role = "admin"
    close = FakeClient._closed

    async def find_coordinator(self, group: str) -> int:
        return 0


class FakeProducer(FakeClient):
    role = "producer"
    stop = FakeClient._closed

    async def send_and_wait(self, topic: str, value: bytes) -> Any:
        self.probe.sent = value
        return SimpleNamespace(partition=0, offset=0)


class FakeConsumer(FakeClient):
    role = "consumer"
    stop = FakeClient._closed

    def assign(self, partitions: Any) -> None:
        pass

    def seek(self, partition: Any, offset: int) -> None:
        pass

    async def getone(self) -> Any:
        return SimpleNamespace(value=self.probe.sent)


def fake_clients(monkeypatch: pytest.MonkeyPatch, probe: Probe) -> None:
    async def no_topics(*args: Any, **kwargs: Any) -> list[str]:
        return []

    FakeClient.probe = probe
    monkeypatch.setattr(readiness, "ensure_topics", no_topics)
    monkeypatch.setattr(clients, "AIOKafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(readiness, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(readiness, "AIOKafkaConsumer", FakeConsumer)


@pytest.mark.parametrize("failing", STAGES)
async def test_a_client_whose_start_fails_is_closed(monkeypatch: pytest.MonkeyPatch,
                                                   failing: str) -> None:
    probe = Probe(failing, "raises")
    fake_clients(monkeypatch, probe)
    with pytest.raises(ConnectionRefusedError):
        await readiness._round_trip("127.0.0.1:1")
    assert probe.closed == list(STAGES[:STAGES.index(failing) + 1])


@pytest.mark.parametrize("failing", STAGES)
async def test_a_client_whose_start_is_cancelled_is_closed(monkeypatch: pytest.MonkeyPatch,
                                                           failing: str) -> None:
    probe = Probe(failing, "hangs")
    fake_clients(monkeypatch, probe)
    task = asyncio.create_task(readiness._round_trip("127.0.0.1:1"))
    await asyncio.wait_for(probe.starting.wait(), 5)
    task.cancel()  # as wait_until_usable's wait_for gives the probe up
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.closed == list(STAGES[:STAGES.index(failing) + 1])


async def test_a_probe_that_succeeds_closes_every_client(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    probe = Probe("none", "raises")
    fake_clients(monkeypatch, probe)
    await readiness._round_trip("127.0.0.1:1")
    assert probe.closed == list(STAGES)
