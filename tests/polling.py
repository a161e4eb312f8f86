"""Waiting for something another task or process does: polled, and bounded in time, so that a
test that would hang fails instead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(condition: Callable[[], object], limit_s: float = 10.0) -> bool:
    """Whether `condition` came true within `limit_s` seconds."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
