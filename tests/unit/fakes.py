"""Stand-ins shared by unit tests of handlers."""

from __future__ import annotations

from typing import Any

from consumers.runtime import Context
from switchboard.records import OutRecord


class FakeContext(Context):
    """A handler context that keeps what the handler publishes instead of sending it."""

    def __init__(self) -> None:
        super().__init__(producer=None, worker="test")  # type: ignore[arg-type]
        self.published: list[OutRecord] = []

    async def publish(self, records: Any) -> None:
        self.published.extend(records)
