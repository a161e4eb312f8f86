"""The simulator's bucket lanes (Infobip's delivery reports, up to a bucket per request, per
account and URL) are gone once idle: one per URL a send ever named grew without end. A report
handed in while a lane's last request is in flight, or just after the lane went, is still sent,
in order. Real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio

import orjson

from simulator.base import Bucket, Webhook
from simulator.webhooks import Job, RetryPolicy
from switchboard.accounts import parse_accounts
from tests.unit.webhook_servers import answering, dispatching

ACCOUNTS = parse_accounts({"accounts": {"plain": {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}}})
ACCOUNT = ACCOUNTS.get("ubiqio", "plain")
BUCKET = Bucket("reports", max_reports=100, max_wait_s=0.02,
                merge=lambda bodies: b"[" + b",".join(bodies) + b"]")
RETRY = RetryPolicy(attempts=1, timeout_s=30)


def _job(numbers: range, url: str | None = None, delay_s: float = 0.0) -> Job:
    assert ACCOUNT is not None
    hooks = tuple(Webhook("status:sent", b"%d" % n, bucket=BUCKET) for n in numbers)
    return Job("ubiqio", ACCOUNT, hooks, delay_s, url=url, signed=url is None)


def _reports(requests: list[tuple[str, bytes]]) -> list[int]:
    """The report numbers the requests carried, in the order they came."""
    found: list[int] = []
    for _, body in requests:
        value = orjson.loads(body)
        found.extend(value if isinstance(value, list) else [value])
    return found


async def test_a_lane_is_gone_once_it_has_nothing_to_send() -> None:
    async with answering() as (url, seen), dispatching(url, retry=RETRY) as dispatcher:
        for index in range(50):  # a URL per message, as a send may name
            dispatcher.enqueue(_job(range(index * 2, index * 2 + 2),
                                    url=f"{url}/notify/{index}"))
        await asyncio.wait_for(dispatcher.drain(), 30)
        assert dispatcher.lanes == 0
    assert (dispatcher.stats.sent, dispatcher.stats.failed) == (100, 0)
    assert sorted(_reports(seen.requests)) == list(range(100))


async def test_a_report_racing_the_lanes_end_is_sent_in_order() -> None:
    """Reports come while the lane's request is in flight (they wait for its next), and as it
    ends (a new lane takes them): none is lost, each job's in order, every lane gone after."""
    async with answering(delay_s=0.03) as (url, seen), dispatching(url, retry=RETRY) as dispatcher:
        for index in range(40):  # the same lane, at delays across its requests' ends
            dispatcher.enqueue(_job(range(index * 3, index * 3 + 3),
                                    delay_s=0.005 * (index % 13)))
            if index % 4 == 0:
                await asyncio.sleep(0.011)
        await asyncio.wait_for(dispatcher.drain(), 60)
        assert dispatcher.lanes == 0
        dispatcher.enqueue(_job(range(120, 121)))  # after: a lane of its own again
        await asyncio.wait_for(dispatcher.drain(), 30)
        assert dispatcher.lanes == 0
    reports = _reports(seen.requests)
    assert sorted(reports) == list(range(121))
    assert dispatcher.stats.sent == 121
    for index in range(40):  # a message's reports in its order
        mine = [n for n in reports if n // 3 == index]
        assert mine == sorted(mine)
