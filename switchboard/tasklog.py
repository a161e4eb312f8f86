"""Log fields bound to one piece of work (a worker's record) for as long as it runs: the lines
logged meanwhile by the task doing it, the code it awaits (ours or a library's, through the
standard library), and the tasks, callbacks and threads it starts (the sender's provider call
runs in a task of its own) carry them; no line logged after it does.

Kept in a ContextVar, which asyncio copies into every task and callback a task starts (and
asyncio.to_thread into its thread), but ended with the block, not with the copies: structlog's
contextvars stay bound in them, so a task a handler starts lazily and that outlives it (the
producer's flusher, created by the first publish after a quiet spell) named the first record
it was started for in every line it logged, about everything else, for as long as it ran. What
serves every record from the start (that flusher, a throttled log's timer) is started in a
`detached()` context, so it names none even while that first record runs.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, MutableMapping
from typing import Any


class _Binding:
    """The fields, and whether the block that bound them still runs (seen by every copy)."""

    __slots__ = ("fields", "open")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.open = True


_BOUND: contextvars.ContextVar[_Binding | None] = contextvars.ContextVar(
    "task_fields", default=None)


@contextlib.contextmanager
def task_fields(**fields: Any) -> Iterator[None]:
    """Bind `fields` to the lines logged by this task, and what it starts, until the block
    ends."""
    binding = _Binding(fields)
    token = _BOUND.set(binding)
    try:
        yield
    finally:
        binding.open = False  # also for the tasks and threads started meanwhile
        _BOUND.reset(token)


def detached() -> contextvars.Context:
    """The current context without the fields bound: for a task or callback started by
    whichever piece of work needs it first, that then serves them all
    (`loop.create_task(coro, context=detached())`)."""
    context = contextvars.copy_context()
    context.run(_BOUND.set, None)
    return context


def add_task_fields(_logger: Any, _method: str,
                    event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the fields bound to the work logging (task_fields), unless the line
    gives its own."""
    binding = _BOUND.get()
    if binding is not None and binding.open:
        for key, value in binding.fields.items():
            event_dict.setdefault(key, value)
    return event_dict
