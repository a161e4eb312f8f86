"""Context.wait_to_retry sees a stop whatever the delay it is given: a delay of 0 (a
RetryLater(delay_s=0), a backoff whose base is 0) returned at once, and the record was tried
again after the worker was told to stop instead of given back. A delay that is no wait
(negative, NaN: a computed one gone wrong) is no wait, and a stop is seen then too."""

from __future__ import annotations

import asyncio
import math

import pytest

from consumers.handling import GiveBack
from tests.unit.fakes import FakeContext

NO_WAITS = [0.0, -1.0, -math.inf, math.nan]


@pytest.mark.parametrize("delay_s", NO_WAITS)
async def test_a_stop_is_seen_whatever_the_delay(delay_s: float) -> None:
    ctx = FakeContext()
    ctx.winding_down.set()
    with pytest.raises(GiveBack):
        await asyncio.wait_for(ctx.wait_to_retry(delay_s), 5)


@pytest.mark.parametrize("delay_s", NO_WAITS)
async def test_a_delay_that_is_no_wait_tries_again_at_once(delay_s: float) -> None:
    ctx = FakeContext()
    await asyncio.wait_for(ctx.wait_to_retry(delay_s), 5)  # returns: no GiveBack, no hang


async def test_a_stop_during_a_wait_ends_it_with_give_back() -> None:
    ctx = FakeContext()
    waiting = asyncio.ensure_future(ctx.wait_to_retry(60))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    ctx.winding_down.set()
    with pytest.raises(GiveBack):
        await asyncio.wait_for(waiting, 5)


async def test_a_short_wait_not_stopped_returns() -> None:
    ctx = FakeContext()
    await asyncio.wait_for(ctx.wait_to_retry(0.01), 5)
