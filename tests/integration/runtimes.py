"""Worker runtimes run in the test's own event loop."""

from __future__ import annotations

import asyncio

from consumers.runtime import WorkerRuntime


async def run_until(runtime: WorkerRuntime, done: asyncio.Event, timeout_s: float = 60) -> None:
    """Runs `runtime` until `done` is set (within `timeout_s`), then stops it."""
    task = asyncio.create_task(runtime.run())
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 30)
