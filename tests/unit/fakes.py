"""Stand-ins and helpers shared by unit tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from consumers import runtime as runtime_module
from consumers.handling import Context
from switchboard.producer import PublishError
from switchboard.records import OutRecord
from switchboard.settings import SettingsError, get_settings


class FakeContext(Context):
    """A handler context that keeps what the handler publishes instead of sending it."""

    def __init__(self) -> None:
        super().__init__(producer=None, worker="test")  # type: ignore[arg-type]
        self.published: list[OutRecord] = []

    async def publish(self, records: Any) -> None:
        self.published.extend(records)


class KafkaAway(FakeContext):
    """A handler context whose Kafka acknowledges nothing until `back` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.back = False

    async def publish(self, records: Any) -> None:
        if not self.back:
            raise PublishError("Kafka did not acknowledge within 5.0s")
        await super().publish(records)


class ModuleWith:
    """A module with some of its names replaced, the rest its own: set as a module's `asyncio`
    or `time` (monkeypatch.setattr), it changes what that one module sees, not the event loop
    or any other module."""

    def __init__(self, module: Any, **replaced: Any) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def settings_error() -> SettingsError:
    """What get_settings, as every command calls it, says of the environment as it is."""
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as failure:
            get_settings()
    finally:
        get_settings.cache_clear()
    return failure.value


def unreachable_consumer(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Have the worker runtime build a consumer whose cluster cannot be reached (its start
    raises KafkaConnectionError). Returns the options it is built with, once it is."""
    options: dict[str, Any] = {}

    class Unreachable:
        def __init__(self, **given: Any) -> None:
            options.update(given)

        def subscribe(self, *args: Any, **kwargs: Any) -> None:
            return None

        async def start(self) -> None:
            raise KafkaConnectionError("no broker in unit tests")

        async def stop(self) -> None:
            return None

    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", Unreachable)
    return options


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`switchboard` as a child process, given only `env`'s settings (none of this shell's)."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    return subprocess.run([sys.executable, "-m", "switchboard.cli", *args], env=clean | env,
                          capture_output=True, text=True, timeout=60, check=False)


def worker_start_in_child(code: str) -> subprocess.CompletedProcess[str]:
    """`code` (which starts a worker, its Kafka never asked) in a child process with the
    example accounts and none of this shell's settings: for signals at a worker's start."""
    repo = Path(__file__).resolve().parents[2]
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env = clean | {"PYTHONPATH": os.pathsep.join(sys.path),
                   "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never asked
                   "SWITCHBOARD_ACCOUNTS_FILE": str(repo / "examples" / "accounts.toml"),
                   "SWITCHBOARD_CREATE_TOPICS": "false", "SWITCHBOARD_LOG_FORMAT": "json"}
    return subprocess.run([sys.executable, "-c", code], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@contextlib.asynccontextmanager
async def served(app: Any, **options: Any) -> AsyncIterator[int]:
    """`app` served by a real uvicorn on 127.0.0.1 (what it answers itself: raw HTTP), on the
    port yielded, until the block ends; `options` go to uvicorn's Config (e.g. `http=`)."""
    import uvicorn

    from switchboard.localkafka import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_config=None, access_log=False, **options))
    serving = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)


class FakeCluster:
    """What DurableProducer asks of aiokafka's cluster metadata: each topic's partitions."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def leader_for_partition(self, tp: Any) -> int:
        return 0  # every partition has its leader, node 0


class FakeKafkaClient:
    """What DurableProducer asks of an AIOKafkaProducer's `client`: its cluster, and the
    topics its metadata refresh is asked for."""

    def __init__(self, partitions: int = 1) -> None:
        self.cluster = FakeCluster(partitions)
        self.topics: set[str] = set()

    def add_topic(self, topic: str) -> None:
        self.topics.add(topic)


class StartedBroker:
    """A LocalKafka that is ready at once; says whether it was stopped."""

    bootstrap_servers = "127.0.0.1:1"

    def __init__(self) -> None:
        self.stopped = False

    def start(self) -> None:
        pass

    async def wait_ready(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True
