"""Futures left to end on their own (cancelled, or answered after nobody waits any more)."""

from __future__ import annotations

import asyncio
from typing import Any


def retrieve(future: asyncio.Future[Any]) -> None:
    """A done-callback that reads the outcome: what it raised was logged where it mattered or
    is moot, and asyncio would otherwise log "exception was never retrieved" for each."""
    if not future.cancelled():
        future.exception()
