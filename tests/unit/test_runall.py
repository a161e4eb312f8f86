"""`switchboard run` prints where to send requests only once everything runs."""

from __future__ import annotations

import asyncio

from switchboard.runall import _all_started


async def test_a_part_that_ended_during_start_up_is_not_announced_as_ready() -> None:
    async def fails_to_start() -> None:
        raise ConnectionError("Kafka refused the login")

    failed = asyncio.create_task(fails_to_start())
    await asyncio.sleep(0)
    assert await _all_started([lambda: False], [failed]) is False
    assert isinstance(failed.exception(), ConnectionError)


async def test_every_part_started_is_ready() -> None:
    running = asyncio.create_task(asyncio.sleep(10))
    try:
        assert await _all_started([lambda: True], [running]) is True
    finally:
        running.cancel()
