"""The whole loop on 127.0.0.1: simulator (providers) <-> ingest, sender, bots, real Kafka.

Each stack is an install of its own on the session's broker: its topics and consumer groups
carry a name prefix of its own (SWITCHBOARD_KAFKA_NAME_PREFIX, as installs sharing a cluster
set it). A command one test leaves unsent (it failed, or stopped its sender first) then stays
on that test's commands topic: a later test's sender, in a group of its own on topics of its
own, can neither send it with its accounts nor write a result for it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn

from consumers.runtime import WorkerRuntime
from consumers.workers import WORKERS, sender_worker
from simulator.app import create_simulator_app
from switchboard.accounts import Accounts, parse_accounts
from switchboard.clients import KafkaConnection
from switchboard.commands import OutboundCommand
from switchboard.localkafka import free_port
from switchboard.records import command_record
from switchboard.serving import EmbeddedServer
from switchboard.settings import Settings
from switchboard.topics import OUTBOUND_RESULTS, ensure_topics
from tests.integration.conftest import IngestServer, start_ingest
from tests.kafka_helpers import Offsets, TopicWatcher, collect_until, publish

# As many as the session's plain topics have: what a test reads of partitions stays true.
STACK_PARTITIONS = 3

# One account per provider: webhook auth (to us) and outbound credentials (to the simulator).
E2E_ACCOUNT_NAMES = {
    "infobip": "e2e-infobip", "infobip-omnichat": "e2e-omnichat", "bird": "e2e-bird",
    "webex": "e2e-webex", "ubiqio": "e2e-ubiqio",
}
# Who the end user is, per provider: phone numbers, except Omnichat's 64-hex user keys.
CONTACTS = {
    "infobip": "+41790000001", "bird": "+31612345678", "webex": "+919812345678",
    "ubiqio": "+14155550123", "infobip-omnichat": "ab" * 32,
}


def e2e_accounts(sim_url: str) -> dict[str, Any]:
    return {
        "e2e-infobip": {
            "provider": "infobip",
            "auth": {"scheme": "basic", "username": "ib", "secrets": ["e2e-ib-webhook"]},
            "outbound": {"base_url": f"{sim_url}/infobip", "api_key": "e2e-ib-api-key",
                         "sender": "InfoSMS"}},
        "e2e-omnichat": {
            "provider": "infobip-omnichat",
            "auth": {"scheme": "basic", "username": "oc", "secrets": ["e2e-oc-webhook"]},
            "outbound": {"base_url": f"{sim_url}/infobip-omnichat", "username": "oc-user",
                         "password": "e2e-oc-password", "application_key": "E2EAPPKEY",
                         "integration_type": "FACEBOOK", "channel": "messenger"}},
        "e2e-bird": {
            "provider": "bird",
            "auth": {"scheme": "bird-signature", "secrets": ["e2e-bird-signing-key"]},
            "outbound": {"base_url": f"{sim_url}/bird", "access_key": "e2e-bird-access-key",
                         "workspace_id": "ws-e2e", "channel_id": "ch-e2e"}},
        "e2e-webex": {
            "provider": "webex",
            "auth": {"scheme": "hub-signature", "secrets": ["e2e-webex-hub"]},
            "outbound": {"base_url": f"{sim_url}/webex", "service_key": "e2e-webex-key",
                         "sender_id": "ACME"}},
        "e2e-ubiqio": {
            "provider": "ubiqio",
            "auth": {"scheme": "token", "secrets": ["e2e-ubiqio-token"]},
            "outbound": {"base_url": f"{sim_url}/ubiqio", "client_id": "e2e-client",
                         "client_secret": "e2e-ubiqio-secret", "account_id": "acc-e2e",
                         "template_id": "tpl-e2e"}},
    }


def isolated_prefix() -> str:
    """A name prefix no other stack (or run) uses."""
    return f"it-{uuid.uuid4().hex[:8]}."


async def stack_topics(bootstrap: str, prefix: str) -> KafkaConnection:
    """The connection to an install's topics under `prefix`, created if missing: for a test
    that writes to them before its stack starts."""
    kafka = KafkaConnection(bootstrap, name_prefix=prefix)
    await ensure_topics(kafka, partitions=STACK_PARTITIONS, replication_factor=1)
    return kafka


class StackWatcher(TopicWatcher):
    """A TopicWatcher of a stack's topics, which names them in what it finds as the code
    does (OUTBOUND_RESULTS.name, not the prefixed name on the cluster)."""

    def __init__(self, bootstrap: str, prefix: str, topics: tuple[str, ...]) -> None:
        super().__init__(bootstrap, tuple(prefix + topic for topic in topics))
        self.prefix = prefix

    async def records_since(self, before: Offsets, timeout_s: float = 20.0
                            ) -> dict[str, list[Any]]:
        found = await super().records_since(before, timeout_s)
        return {topic.removeprefix(self.prefix): records for topic, records in found.items()}


def command_for(provider: str, text: str = "Hello from Switchboard") -> OutboundCommand:
    """A fresh command to `provider`'s e2e account and contact."""
    return OutboundCommand(id=f"cmd-{uuid.uuid4()}", account=E2E_ACCOUNT_NAMES[provider],
                           to=CONTACTS[provider], text=text, created_at=datetime.now(UTC))


def results_for(found: dict[str, list[Any]], command_id: str) -> list[dict[str, Any]]:
    """The outbound results in `found` (by topic, as TopicWatcher reads) for one command."""
    values = [orjson.loads(r.value) for r in found.get(OUTBOUND_RESULTS.name, [])]
    return [v for v in values if v["command_id"] == command_id]


async def sent_alone(bootstrap: str, settings: Settings, accounts: Accounts,
                     command: OutboundCommand, provider: str) -> list[dict[str, Any]]:
    """The results of `command`, sent by a sender worker started for `accounts` alone. The
    `settings` name a prefix of their own (isolated_prefix; see the module's docstring)."""
    prefix = settings.kafka_name_prefix
    assert prefix, "a sender of the plain topics could take other tests' commands"
    kafka = await stack_topics(bootstrap, prefix)
    async with sender_worker(settings, accounts) as runtime:
        running = asyncio.create_task(runtime.run())
        try:
            await asyncio.wait_for(runtime.ready.wait(), 30)
            async with StackWatcher(bootstrap, prefix, (OUTBOUND_RESULTS.name,)) as watcher:
                before = await watcher.snapshot()
                await publish(kafka, [command_record(command, provider)])
                found = await collect_until(watcher, before,
                                            lambda f: bool(results_for(f, command.id)))
        finally:
            runtime.stop()
            await running
    return results_for(found, command.id)


@dataclass
class Stack:
    bootstrap: str
    accounts: Accounts
    accounts_data: dict[str, Any]
    sim_url: str
    ingest: IngestServer
    settings: Settings
    workers: dict[str, WorkerRuntime] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """Before the name of each of this stack's topics and consumer groups."""
        return self.settings.kafka_name_prefix

    def kafka(self, bootstrap: str | None = None) -> KafkaConnection:
        """This stack's topics, through `bootstrap` (another listener of its broker) or its
        own (plain) one."""
        return KafkaConnection(bootstrap or self.bootstrap, name_prefix=self.prefix)

    def watching(self, topics: tuple[str, ...], bootstrap: str | None = None) -> StackWatcher:
        """A watcher of this stack's `topics` (named as the code names them)."""
        return StackWatcher(bootstrap or self.bootstrap, self.prefix, topics)

    async def sends(self, account: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.sim_url}/_sim/sends", params={"account": account})
            response.raise_for_status()
            sends: list[dict[str, Any]] = response.json()["sends"]
            return sends

    async def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.request(method, f"{self.sim_url}/_sim/{path}", json=body)


@contextlib.asynccontextmanager
async def running_stack(bootstrap: str, *, workers: tuple[str, ...] = ("sender",),
                        rules_file: Path | None = None, **kafka: Any) -> AsyncIterator[Stack]:
    """`kafka`: more settings for how the services reach the cluster (TLS, SASL). Unless it
    names one, the stack takes a name prefix of its own (see the module's docstring): a test
    whose stacks must find each other's groups and topics (a restart) passes the same one."""
    kafka = {"kafka_name_prefix": isolated_prefix(), "topic_partitions": STACK_PARTITIONS,
             **kafka}
    sim_port, ingest_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    ingest_url = f"http://127.0.0.1:{ingest_port}"
    data = e2e_accounts(sim_url)
    accounts = parse_accounts({"accounts": data})
    settings = Settings(kafka_bootstrap_servers=bootstrap, public_url=ingest_url,
                        rules_file=rules_file, http_port=ingest_port, **kafka)

    simulator = EmbeddedServer(uvicorn.Config(
        create_simulator_app(accounts, ingest_url, status_delay_s=0.02), host="127.0.0.1",
        port=sim_port, log_config=None, access_log=False))
    sim_task = asyncio.create_task(simulator.serve())
    ingest, ingest_task = await start_ingest(bootstrap, accounts, port=ingest_port, **kafka)
    stack = Stack(bootstrap, accounts, data, sim_url, ingest, settings)
    async with contextlib.AsyncExitStack() as exits:
        tasks = []
        for name in workers:
            runtime = await exits.enter_async_context(WORKERS[name](settings, accounts))
            stack.workers[name] = runtime
            tasks.append(asyncio.create_task(runtime.run()))
        try:
            for _ in range(600):  # bounded: 30 s
                if simulator.started and all(r.ready.is_set() for r in stack.workers.values()):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the stack did not become ready")
            yield stack
        finally:
            for runtime in stack.workers.values():
                runtime.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            ingest.server.should_exit = True
            simulator.should_exit = True
            await asyncio.gather(ingest_task, sim_task, return_exceptions=True)
