"""Delivering webhooks to ingest, signed the way each account's provider signs them.

The webhooks of one message go out as one job, in lifecycle order, each after a short delay;
each job is a task of its own, so one waiting for its delay (or its bucket) holds up no other.
Requests go through simulator.posting: a few kept-open connections, and a URL a send named held
to its share of them, so one that never answers holds up neither ingest's webhooks nor others'.
A webhook ingest does not answer with 2xx is retried with exponential backoff a bounded number
of times, then dropped and counted, like a provider giving up.

At most `queue_limit` jobs are held (WEBHOOK_QUEUE_LIMIT by default), waiting or being sent.
With ingest slower than the sends, an unbounded queue grew without end and its webhooks arrived
ever later; full, a new job's webhooks are dropped and counted (`failed`, and `queue_full` of
those), and the send that made them is still accepted, as a provider's would be. The jobs for
a host other than ingest's that sends named hold at most a quarter of the queue, counted the
same when it is full: those of one that never answers filled it, and ingest's were dropped. A
job handed in before `start` or after `stop` is dropped and counted too: no task outlives the
dispatcher. A job whose request to such a URL gets no connection within `connection_wait_s`
(CONNECTION_WAIT_S), its origin answering none meanwhile, is dropped with the webhooks it has
left, counted (`failed`, and `connections_busy` of those): its next would wait behind the same
origin again, and it waited without end behind one that never answers.

Reports in a provider's `Bucket` (Infobip's delivery reports) take a lane per account, URL and
bucket, which gathers them for the bucket's wait (or until it is full) and sends them in one
request, one request in flight at a time, as the provider batches them. The job waits for its
report's request, so a message's webhooks keep their order. A lane is gone once it has nothing
to send: one per URL a send ever named would grow without end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from ingest.signing import sign
from simulator.base import Bucket, Webhook
from simulator.posting import CONNECTION_WAIT_S, ConnectionsBusy, Poster
from switchboard.accounts import Account
from switchboard.logs import get_logger
from switchboard.throttle import ThrottledLog

log = get_logger(__name__)

RECENT_LIMIT = 200
# Jobs (one per message) held, waiting or being sent: 4-13 KB each by provider (its three or
# four webhook bodies) and 1.7 KB for its task (tracemalloc), so 57-147 MB when full.
WEBHOOK_QUEUE_LIMIT = 10_000
# Of those, the most a host other than ingest's may hold: 1 / HOST_QUEUE_SHARE of the limit.
HOST_QUEUE_SHARE = 4


@dataclass(frozen=True, slots=True)
class Job:
    """The webhooks of one message (or one inbound message), delivered in order."""

    provider: str
    account: Account
    webhooks: tuple[Webhook, ...]
    delay_s: float  # before each webhook: statuses follow the send, not precede its answer
    url: str | None = None  # named by the send request; else the account's ingest URL
    signed: bool = True  # with the account's credentials (a URL given per message has none)


@dataclass(slots=True)
class WebhookStats:
    sent: int = 0  # webhooks (reports), however many requests carried them
    failed: int = 0  # dropped: after the last attempt, or never queued (queue_full)
    retried: int = 0
    skipped: int = 0  # no ingest URL configured
    queue_full: int = 0  # of failed: dropped as their job found the queue full
    connections_busy: int = 0  # of failed: dropped as their job got no connection in time

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried,
                "skipped": self.skipped, "queue_full": self.queue_full,
                "connections_busy": self.connections_busy}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard the simulator tries to deliver one webhook before dropping it."""

    attempts: int = 4
    backoff_s: float = 0.2  # doubles after every failed attempt
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("retry needs attempts >= 1, backoff_s >= 0 and timeout_s > 0")


_LaneKey = tuple[str, str | None, Bucket]  # account, URL named by the send, bucket


@dataclass(slots=True)
class _Lane:
    """Bucketed reports of one account and URL waiting for the lane's next request."""

    key: _LaneKey
    job: Job  # its first report's: whose requests, to which URL, signed or not
    waiting: list[tuple[Webhook, asyncio.Future[None]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class WebhookDispatcher:
    """The webhook jobs held, each a task delivering its webhooks to ingest."""

    def __init__(self, ingest_url: str | None, *, retry: RetryPolicy | None = None,
                 queue_limit: int = WEBHOOK_QUEUE_LIMIT,
                 connection_wait_s: float = CONNECTION_WAIT_S,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if queue_limit < 1:  # a limit of 0 would drop every job
            raise ValueError(f"queue_limit must be at least 1, not {queue_limit}")
        if not connection_wait_s > 0:  # 0 would drop every job that waits at all
            raise ValueError(f"connection_wait_s must be above 0, not {connection_wait_s}")
        self.ingest_url = ingest_url.rstrip("/") if ingest_url else None
        self.retry = retry or RetryPolicy()
        self.stats = WebhookStats()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_LIMIT)
        self.queue_limit = queue_limit
        self.connection_wait_s = connection_wait_s
        self._transport = transport
        # Ingest away or behind fails or drops webhooks at the rate of the sends: each kind of
        # line (a full queue; an account's webhooks dropped; a URL unreachable) once a minute.
        self._drop_log = ThrottledLog(log)
        self._jobs: set[asyncio.Task[None]] = set()
        self._held_by_host: dict[str, int] = {}  # jobs held per host other than ingest's
        self._lanes: dict[_LaneKey, _Lane] = {}
        self._poster: Poster | None = None  # while started: jobs are taken only then

    def url_for(self, provider: str, account: str) -> str | None:
        if self.ingest_url is None:
            return None
        # Percent-encoded, as the sender writes the URLs it gives providers (`acme#1` as is
        # ends the path at the `#`, and ingest answers 404).
        return f"{self.ingest_url}/webhooks/{provider}/{quote(account, safe='')}"

    async def start(self) -> None:
        self._poster = Poster(self.ingest_url, self.retry.timeout_s, self._transport,
                              wait_s=self.connection_wait_s)

    async def stop(self) -> None:
        """Cancel every job and lane and close every connection, whatever any of them raised:
        stopping always finishes."""
        poster, self._poster = self._poster, None  # jobs handed in from now on are dropped
        tasks = [*self._jobs, *(lane.task for lane in self._lanes.values() if lane.task)]
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if not isinstance(result, asyncio.CancelledError | None):
                log.error("simulator webhook task failed", error=type(result).__name__,
                          exc_info=result)
        self._jobs = set()
        self._lanes = {}
        self._drop_log.flush()
        for error in await poster.aclose() if poster else []:
            log.warning("simulator webhook connection not closed cleanly",
                        error=type(error).__name__)

    def enqueue(self, job: Job) -> None:
        if (self.ingest_url is None and job.url is None) or not job.webhooks:
            self.stats.skipped += len(job.webhooks)
            return
        if self._poster is None:  # not started, or stopped: a task would outlive the stop
            self.stats.failed += len(job.webhooks)
            self._drop_log(logging.WARNING, "simulator webhooks not running, webhooks dropped",
                           {}, provider=job.provider, account=job.account.name,
                           webhooks=len(job.webhooks))
            return
        if len(self._jobs) >= self.queue_limit:
            self.stats.failed += len(job.webhooks)
            self.stats.queue_full += len(job.webhooks)
            self._drop_log(logging.WARNING, "simulator webhook queue full, webhooks dropped",
                           {"queue_limit": self.queue_limit}, provider=job.provider,
                           account=job.account.name, webhooks=len(job.webhooks))
            return
        host = self._poster.foreign(job.url)
        if host is not None and (self._held_by_host.get(host, 0)
                                 >= max(1, self.queue_limit // HOST_QUEUE_SHARE)):
            self.stats.failed += len(job.webhooks)
            self.stats.queue_full += len(job.webhooks)
            # Not the host: a URL a send named may carry credentials (user:password@host).
            self._drop_log(logging.WARNING,
                           "simulator webhook queue's share for a URL's host full, webhooks "
                           "dropped", {"queue_limit": self.queue_limit}, provider=job.provider,
                           account=job.account.name, webhooks=len(job.webhooks))
            return
        task = asyncio.create_task(self._run(job))
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        if host is not None:
            self._held_by_host[host] = self._held_by_host.get(host, 0) + 1
            task.add_done_callback(functools.partial(self._host_job_done, host))

    def _host_job_done(self, host: str, task: asyncio.Task[None]) -> None:
        held = self._held_by_host.get(host, 0) - 1
        if held > 0:
            self._held_by_host[host] = held
        else:  # an entry per host sends ever named would grow without end
            self._held_by_host.pop(host, None)

    @property
    def pending(self) -> int:
        return len(self._jobs)

    @property
    def lanes(self) -> int:
        """Bucket lanes open: each has reports waiting or a request in flight."""
        return len(self._lanes)

    async def drain(self) -> None:
        """Wait until every held job is delivered or dropped (tests, orderly shutdown)."""
        while self._jobs:
            await asyncio.wait(set(self._jobs))

    def to_dict(self) -> dict[str, Any]:
        return {**self.stats.to_dict(), "pending": self.pending, "queue_limit": self.queue_limit,
                "recent": list(self.recent)}

    async def _run(self, job: Job) -> None:
        left = len(job.webhooks)  # not yet sent or failed
        try:
            for hook in job.webhooks:
                if job.delay_s > 0:
                    await asyncio.sleep(job.delay_s)
                if hook.bucket is None:
                    await self._deliver(job, hook)
                else:
                    await self._deliver_in_bucket(job, hook, hook.bucket)
                left -= 1
        except ConnectionsBusy:  # this webhook and those after it
            self.stats.failed += left
            self.stats.connections_busy += left
            # Not the URL: one a send named may carry credentials (user:password@host).
            self._drop_log(logging.WARNING,
                           "simulator webhook got no connection to its URL's origin in time, "
                           "webhooks dropped", {"connection_wait_s": self.connection_wait_s},
                           provider=job.provider, account=job.account.name, webhooks=left)
        except Exception:  # said, not left for the loop's handler to find at exit
            log.exception("simulator webhook job failed", provider=job.provider,
                          account=job.account.name)

    async def _deliver_in_bucket(self, job: Job, hook: Webhook, bucket: Bucket) -> None:
        key = (job.account.name, job.url, bucket)
        lane = self._lanes.get(key)
        if lane is None:  # a lane in _lanes has a task that has not yet found it empty
            lane = self._lanes[key] = _Lane(key, job)
            lane.task = asyncio.create_task(self._run_lane(lane, bucket))
        delivered = asyncio.get_running_loop().create_future()
        lane.waiting.append((hook, delivered))
        await delivered

    async def _run_lane(self, lane: _Lane, bucket: Bucket) -> None:
        """Deliver the lane's waiting reports, up to a bucket per request, until none wait."""
        try:
            while lane.waiting:
                if len(lane.waiting) < bucket.max_reports:
                    await asyncio.sleep(bucket.max_wait_s)  # let the bucket fill
                batch = lane.waiting[:bucket.max_reports]
                del lane.waiting[:bucket.max_reports]
                busy = False
                try:
                    await self._deliver_batch(lane.job, bucket, [hook for hook, _ in batch])
                except ConnectionsBusy:  # each report's job drops it and the rest it has
                    busy = True
                finally:
                    for _, delivered in batch:
                        if delivered.done():  # its job was cancelled
                            continue
                        if busy:
                            delivered.set_exception(ConnectionsBusy())
                        else:
                            delivered.set_result(None)
        finally:
            # In the step that found it empty, with no await since: a report handed in later
            # opens a lane of its own rather than joining one whose task has ended.
            if self._lanes.get(lane.key) is lane:
                del self._lanes[lane.key]

    async def _deliver_batch(self, job: Job, bucket: Bucket, hooks: list[Webhook]) -> None:
        """One request of a bucket's reports; one that cannot be made is failed and counted
        (a lane that raised would leave the reports after it unsent and stop() raising)."""
        try:
            merged = hooks[0] if len(hooks) == 1 else Webhook(
                kind=hooks[0].kind, body=bucket.merge([hook.body for hook in hooks]),
                content_type=hooks[0].content_type)
            await self._deliver(job, merged, reports=len(hooks))
        except ConnectionsBusy:  # counted by the reports' jobs
            raise
        except Exception:
            self.stats.failed += len(hooks)
            log.exception("simulator webhook bucket failed", provider=job.provider,
                          account=job.account.name, bucket=bucket.name, reports=len(hooks))

    async def _deliver(self, job: Job, hook: Webhook, reports: int = 1) -> None:
        url = job.url or self.url_for(job.provider, job.account.name)
        assert url is not None
        headers = {"content-type": hook.content_type, "user-agent": "switchboard-simulator"}
        if job.signed:
            headers.update(signed_headers(job.account, url, hook.body))
        outcome, status, attempt = "failed", None, 0
        for attempt in range(1, self.retry.attempts + 1):
            status = await self._post(url, hook.body, headers)
            if status is not None and 200 <= status < 300:
                outcome = "sent"
                break
            if attempt < self.retry.attempts:
                self.stats.retried += 1
                await asyncio.sleep(self.retry.backoff_s * 2 ** (attempt - 1))
        if outcome == "sent":
            self.stats.sent += reports
        else:
            self.stats.failed += reports
            self._drop_log(logging.WARNING, "simulator webhook dropped",
                           {"provider": job.provider, "account": job.account.name},
                           webhook=hook.kind, status=status, attempts=attempt, reports=reports)
        self.recent.append({"provider": job.provider, "account": job.account.name,
                            "kind": hook.kind, "reports": reports, "outcome": outcome,
                            "http_status": status, "attempts": attempt,
                            "at": datetime.now(UTC).isoformat()})

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int | None:
        """The HTTP status ingest answered, or None when it could not be reached; raises
        ConnectionsBusy when no connection came free in time (not a try: none was made)."""
        assert self._poster is not None  # jobs run only while started; stop cancels them
        try:
            return await self._poster.post(url, body, headers)
        except ConnectionsBusy:
            raise
        except Exception as exc:  # noqa: BLE001 - not only HTTPError: a URL a send named may be
            # one httpx refuses (InvalidURL; a port past 65535, OverflowError), failed as any
            self._drop_log(logging.INFO, "simulator webhook not delivered",
                           {"url": url, "error": type(exc).__name__})
            return None


def signed_headers(account: Account, url: str, body: bytes) -> dict[str, str]:
    """The auth headers the account's provider sends with a webhook to `url`.

    Schemes that sign the URL sign the one the provider was given: `auth.public_url` when
    ingest sits behind a proxy, else the URL posted to.
    """
    auth = account.auth
    return sign(auth.scheme, auth.secret_values()[0], url=auth.public_url or url, body=body,
                username=auth.username, header=auth.header)
