"""Small asyncio helpers: futures left to end on their own (cancelled, or answered after
nobody waits any more), and waiting for one without outlasting a stop."""

from __future__ import annotations

import asyncio
from typing import Any


def retrieve(future: asyncio.Future[Any]) -> None:
    """A done-callback that reads the outcome: what it raised was logged where it mattered or
    is moot, and asyncio would otherwise log "exception was never retrieved" for each."""
    if not future.cancelled():
        future.exception()


async def first_of(work: asyncio.Future[Any], stop: asyncio.Event, *,
                   timeout_s: float | None = None) -> bool:
    """Wait until `work` is done, `stop` is set or `timeout_s` has passed: True when `work` is
    done. aiokafka waits for Kafka for ever in places (joining, a position), and a stop must
    not wait with it. `work` is left as it is: what it needs (cancelled, waited for, its
    outcome retrieved) differs from one caller to the next."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, timeout=timeout_s,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    return work.done()
