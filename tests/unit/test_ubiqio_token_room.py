"""Ubiqio's token requests take room in their origin's room for requests in flight, as its send
requests do: a token endpoint that hangs holds at most that room, not a concurrency slot per
account besides it. The token path and the send path share base_url, so one origin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from consumers.outbound import SendContext, ubiqio
from consumers.outbound.limits import ORIGIN_ROOMS, WINDING_DOWN, OriginRooms, Stopping
from switchboard.commands import OutboundCommand
from tests.polling import until
from tests.provider_servers import Provider

COMMAND = OutboundCommand(id="cmd-1", account="acme", to="+41790001111", text="Hi",
                          created_at=datetime.now(UTC))


def _client(http: httpx.AsyncClient, base_url: str, account: str = "acme") -> ubiqio.Client:
    config = ubiqio.Config(base_url=base_url, client_id="cid", client_secret="csecret",
                           account_id="acc-1", template_id="tpl-1", timeout_s=30)
    return ubiqio.Client(config, http, SendContext(account=account, webhook_url=None))


def _free(rooms: OriginRooms, url: str) -> int:
    return rooms.of(url)._free._value


@pytest.mark.usefixtures("no_proxies")
async def test_hanging_token_requests_take_no_more_than_their_origins_room() -> None:
    # One send per account (each its own token): 5 token requests hung before, one per account.
    rooms = OriginRooms(2)
    ORIGIN_ROOMS.set(rooms)
    async with Provider(hang=True).running() as stuck, httpx.AsyncClient() as http:
        sends = [asyncio.create_task(_client(http, stuck.base_url, f"a{n}").send(COMMAND))
                 for n in range(5)]
        assert await until(lambda: stuck.requests >= 2, 10)
        await asyncio.sleep(0.5)  # time for any more to arrive
        assert stuck.requests == 2 and _free(rooms, stuck.base_url) == 0
        assert not any(send.done() for send in sends)  # the other 3 wait for room
        for send in sends:
            send.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
    assert _free(rooms, stuck.base_url) == 2  # every place given back


def _ubiqio_answering(first_send_status: int) -> Callable[[httpx.Request], httpx.Response]:
    tokens = iter(["t1", "t2", "t3"])
    sends = iter([first_send_status, 200, 200])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(ubiqio.AUTH_PATH):
            return httpx.Response(200, json={"token": next(tokens)})
        return httpx.Response(next(sends), json={"messageId": "ub-1"})
    return answer


@pytest.mark.parametrize("first_send_status", [200, 401])
async def test_a_send_and_its_token_requests_share_a_room_of_one(first_send_status: int) -> None:
    # The token request gives its place back before the send takes one, and a 401's new token
    # is asked for with the send's place given back: neither waits for itself.
    rooms = OriginRooms(1)
    ORIGIN_ROOMS.set(rooms)
    transport = httpx.MockTransport(_ubiqio_answering(first_send_status))
    async with httpx.AsyncClient(transport=transport) as http:
        receipt = await asyncio.wait_for(_client(http, "http://ubiqio.test").send(COMMAND), 5)
    assert receipt.provider_message_id == "ub-1"
    assert _free(rooms, "http://ubiqio.test") == 1


async def test_a_token_request_waiting_for_room_stops_with_the_worker() -> None:
    # Handed back unsent (Stopping), by the send that waited for room and by the one waiting
    # for its token: a stop is no token failure for them to share.
    rooms = OriginRooms(1)
    ORIGIN_ROOMS.set(rooms)
    stopping = asyncio.Event()
    WINDING_DOWN.set(stopping)
    await rooms.of("http://ubiqio.test").take()  # a request in flight there
    transport = httpx.MockTransport(_ubiqio_answering(200))
    async with httpx.AsyncClient(transport=transport) as http:
        client = _client(http, "http://ubiqio.test")
        sends = [asyncio.create_task(client.send(COMMAND)) for _ in range(2)]
        await asyncio.sleep(0.1)
        assert not any(send.done() for send in sends)
        stopping.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), 5)
    assert [type(outcome) for outcome in outcomes] == [Stopping, Stopping]
    assert client._failed_fetches == 0
    assert _free(rooms, "http://ubiqio.test") == 0  # the request in flight keeps its place
