"""Stand-ins shared by unit tests of code that publishes: pure tests need no broker."""

from __future__ import annotations

from switchboard.records import OutRecord


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
