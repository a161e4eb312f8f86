"""Log fields bound to one asyncio task: the lines it logs carry them (also those of the code it
awaits, ours or a library's through the standard library), the lines of tasks it starts do not.

structlog's contextvars would not do: a task copies the context it is created in, so a task a
handler starts lazily and that outlives it (the producer's flusher, created by the first
publish after a quiet spell) would name the first record it was started for in every line it
logs, about everything else, for as long as it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any

# The task the fields are bound to, and the fields.
_BOUND: ContextVar[tuple[asyncio.Task[Any] | None, dict[str, Any]] | None] = ContextVar(
    "task_fields", default=None)


@contextlib.contextmanager
def task_fields(**fields: Any) -> Iterator[None]:
    """Bind `fields` to the lines this task logs until the block ends."""
    token = _BOUND.set((asyncio.current_task(), fields))
    try:
        yield
    finally:
        _BOUND.reset(token)


def add_task_fields(_logger: Any, _method: str,
                    event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the fields bound to the task logging (task_fields), unless the line
    gives its own."""
    bound = _BOUND.get()
    if bound is None:
        return event_dict
    owner, fields = bound
    try:
        current = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread: a call run in a copy of the task's
        current = owner  # context (asyncio.to_thread), which ends with the call
    if current is owner:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    return event_dict
