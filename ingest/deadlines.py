"""A deadline on reading a webhook's body, so a stalled sender cannot hold a request for ever.

uvicorn times out nothing between a request's headers and the end of its body: a caller that
declares 1 MiB and sends 10 bytes holds its request, and the memory read so far, until it hangs
up. Signed schemes read the body before they can authenticate, so anyone who knows a URL could
hold as many as they open.

One timer per request (asyncio.timeout) would cost each request more than the check itself; a
single timer sweeps instead, every tenth of the deadline, and only while some body is being read.
"""

from __future__ import annotations

import asyncio
from typing import Any

Task = asyncio.Task[Any]


class BodyTimeout(Exception):
    """The body did not arrive whole within the deadline."""


class BodyDeadlines:
    """Tracks the tasks reading a body; cancels those reading for longer than `timeout_s`.

    Usage, around every await of the read:

        task = deadlines.begin()
        try:
            ...  # await the body
        except asyncio.CancelledError:
            deadlines.raise_if_expired(task)  # BodyTimeout if the cancel was ours
            raise
        finally:
            deadlines.end(task)

    A cancel can only land while the task is suspended inside that `try` (it is tracked only
    between `begin` and `end`, and the sweep runs while the task waits), so it never reaches
    the publish that follows the read.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._interval = min(timeout_s / 10, 1.0)
        # Insertion order is start order: the sweep stops at the first one still in time.
        self._reading: dict[Task, float] = {}
        self._expired: set[Task] = set()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> Task:
        task = asyncio.current_task()
        assert task is not None, "a body is read inside a task"
        loop = task.get_loop()
        self._reading[task] = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self._interval, self._sweep, loop)
        return task

    def end(self, task: Task) -> None:
        self._reading.pop(task, None)

    def raise_if_expired(self, task: Task) -> None:
        """Turn this deadline's cancel into BodyTimeout; any other cancel goes on as it is."""
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            raise BodyTimeout(f"the body did not arrive within {self.timeout_s:g} s")

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        started_before = loop.time() - self.timeout_s
        late: list[Task] = []
        for task, started in self._reading.items():  # oldest first: no copy of them all
            if started > started_before:
                break
            late.append(task)
        for task in late:
            del self._reading[task]
            self._expired.add(task)
            task.cancel()
        if self._reading:
            self._timer = loop.call_later(self._interval, self._sweep, loop)
