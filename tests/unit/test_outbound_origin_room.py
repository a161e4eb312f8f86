"""An origin's room for send requests in flight, taken with an account's token (TokenBucket
.acquire): after the token, in the account's turn; given back on every way out."""

from __future__ import annotations

import asyncio

import pytest

from consumers.handling import SLOT, Slot
from consumers.outbound.limits import (
    WINDING_DOWN,
    OriginRoom,
    OriginRooms,
    Stopping,
    TokenBucket,
)


async def _settle() -> None:
    for _ in range(20):  # let the tasks started run as far as they can
        await asyncio.sleep(0)


def _free(room: OriginRoom) -> int:
    return room._free._value


async def test_an_account_at_its_rate_limit_takes_one_token_ahead_of_the_room() -> None:
    # A provider that hung and recovers would otherwise be sent, at once, every token its
    # account's waiting sends had taken meanwhile: past the account's rate limit.
    room = OriginRoom(1)
    await room.take()  # a request in flight that does not come back
    bucket = TokenBucket(rate_per_s=4, burst=1)
    waiting = [asyncio.create_task(bucket.acquire(room)) for _ in range(10)]
    await asyncio.sleep(1.5)  # 6 tokens' worth: taken, they would all go at once below
    assert sum(task.done() for task in waiting) == 0
    for _ in range(10):  # the provider answers again: each send's room handed to the next
        room.give()
        await _settle()
    # the one that waited with its token, then the token refilled meanwhile (a burst of 1);
    # one more if this machine stalled a quarter of a second here
    assert 2 <= sum(task.done() for task in waiting) <= 3
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_an_account_waiting_for_its_rate_limit_holds_no_room_of_another_account() -> None:
    room = OriginRoom(2)
    limited = TokenBucket(rate_per_s=0.001, burst=1)
    backlog = [asyncio.create_task(limited.acquire(room)) for _ in range(5)]
    await _settle()
    assert sum(task.done() for task in backlog) == 1 and _free(room) == 1  # the first one sent
    # another account at the same host: its send goes at once
    await asyncio.wait_for(TokenBucket(rate_per_s=1, burst=1).acquire(room), 5)
    assert _free(room) == 0
    for task in backlog:
        task.cancel()
    await asyncio.gather(*backlog, return_exceptions=True)
    room.give()
    room.give()
    assert _free(room) == 2


async def test_a_send_waiting_for_room_stops_with_the_worker_and_takes_none() -> None:
    room = OriginRoom(1)
    await room.take()
    stopping = asyncio.Event()
    WINDING_DOWN.set(stopping)
    bucket = TokenBucket(rate_per_s=1, burst=1)
    waiting = asyncio.create_task(bucket.acquire(room))
    await _settle()
    stopping.set()
    with pytest.raises(Stopping):
        await asyncio.wait_for(waiting, 5)
    room.give()
    assert _free(room) == 1
    with pytest.raises(Stopping):  # no room taken once the worker winds down
        await room.take()
    assert _free(room) == 1


async def test_room_taken_is_given_back_when_cancelled_waiting_for_its_slot() -> None:
    slots = asyncio.Semaphore(1)
    other, mine = Slot(slots), Slot(slots)
    room = OriginRoom(1)

    async def send() -> None:
        SLOT.set(mine)
        await mine.take()
        # gives the slot up: `other` takes it, and holds it while this waits to go on
        await TokenBucket(rate_per_s=1, burst=1).acquire(room)

    await room.take()  # a request in flight: the send waits for room, its slot given up
    sending = asyncio.create_task(send())
    await _settle()
    await asyncio.wait_for(other.take(), 5)
    room.give()  # the request answered: the send takes the room, then waits for a slot
    await _settle()
    assert _free(room) == 0 and not sending.done()
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    assert _free(room) == 1


def test_rooms_are_per_origin_whatever_the_path() -> None:
    rooms = OriginRooms(3)
    room = rooms.of("https://api.example.com/sms/2/text/advanced")
    assert rooms.of("https://api.example.com:443/whatsapp/1/message") is room
    assert rooms.of("http://api.example.com/sms") is not room
    assert rooms.of("https://other.example.com/sms") is not room
