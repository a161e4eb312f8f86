"""Stand-ins shared by unit tests of code that publishes: pure tests need no broker."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from ingest.app import create_app
from switchboard.accounts import parse_accounts
from switchboard.records import OutRecord
from switchboard.settings import Settings


class KeepingProducer:
    """Takes the place of DurableProducer: connected, and keeps what it would publish (every
    publish is acknowledged at once)."""

    started = True

    def __init__(self) -> None:
        self.published: list[OutRecord] = []

    async def publish(self, records: list[OutRecord]) -> None:
        self.published.extend(records)

    async def stop(self) -> None:
        self.started = False


def infobip_ingest(producer: KeepingProducer, password: str) -> Starlette:
    """Ingest with one Infobip account `acme` (HTTP Basic, user `u`) publishing through
    `producer`: Kafka is never reached."""
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": [password]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    app.state.handler.producer = producer
    return app


class CaughtUpTable:
    """Takes the place of CompactedTable: a table caught up, holding nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def catch_up(self) -> None:
        pass

    def on_failure(self, callback: Any) -> None:
        pass

    def get(self, key: bytes) -> None:
        return None
