"""Remembers recently kept webhooks so exact provider retries are not published twice.

Bounded in entries and age: memory stays flat whatever the traffic. This is a courtesy to
consumers, not a guarantee (it is per process and forgets); event ids are the guarantee.
A repeat that comes while the first is still being stored waits for it (claim, release,
seen_once_stored), and is then answered as a repeat of what it kept: a provider retrying a
request it timed out on while ingest waited for Kafka had both stored.
A request kept as a dead letter is remembered with its answer: providers retry a 4xx for
hours, and each retry would otherwise be another dead letter of the same bytes. Each retry
remembers it for `ttl_s` more, so a provider retrying every few minutes leaves one letter in
all, not one per `ttl_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict

# (HTTP status, error code, reason) of a request kept as a dead letter.
Failure = tuple[int, str, str]


class Refused(float):
    """The time a dead-lettered request was kept, with the answer it got. A float like a
    stored request's entry, so reading and expiring entries costs the usual path nothing."""

    __slots__ = ("answer",)
    answer: Failure

    def __new__(cls, at: float, answer: Failure) -> Refused:
        entry = super().__new__(cls, at)
        entry.answer = answer
        return entry


class RecentRequests:
    def __init__(self, max_entries: int = 100_000, ttl_s: float = 600.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        # The requests being stored now, each with what a repeat that came meanwhile waits on:
        # made only then (most requests have none), so a claim costs two dict operations.
        self._storing: dict[bytes, asyncio.Future[None] | None] = {}

    @staticmethod
    def fingerprint(*parts: bytes | str) -> bytes:
        digest = hashlib.blake2b(digest_size=16)
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.digest()

    def seen(self, fingerprint: bytes, now: float | None = None) -> float | None:
        """None, or the entry of a request kept within `ttl_s`: the time it was stored, or a
        Refused if it was kept as a dead letter, or last retried, within `ttl_s`."""
        now = time.monotonic() if now is None else now
        stored = self._seen.get(fingerprint)
        if stored is None:
            return None
        if now - stored > self.ttl_s:
            del self._seen[fingerprint]
            return None
        if isinstance(stored, Refused):
            # Renewed, and moved to the new end: expiry reads entries oldest first.
            stored = self._seen[fingerprint] = Refused(now, stored.answer)
            self._seen.move_to_end(fingerprint)
        return stored

    def remember(self, fingerprint: bytes, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._seen[fingerprint] = now
        self._seen.move_to_end(fingerprint)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        # Expire from the old end too, so idle periods release memory.
        while self._seen:
            oldest, stored = next(iter(self._seen.items()))
            if now - stored <= self.ttl_s:
                break
            del self._seen[oldest]

    def remember_refused(self, fingerprint: bytes, answer: Failure,
                         now: float | None = None) -> None:
        """Remember a request kept as a dead letter, and the answer its repeats get. Its entry
        is the newest once remembered, so no eviction can have taken it before it is replaced."""
        now = time.monotonic() if now is None else now
        self.remember(fingerprint, now)
        self._seen[fingerprint] = Refused(now, answer)

    def claim(self, fingerprint: bytes) -> bool:
        """True when no request of this fingerprint is being stored: this one is now, until
        release(). False when one is: seen_once_stored waits for it."""
        if fingerprint in self._storing:
            return False
        self._storing[fingerprint] = None
        return True

    def release(self, fingerprint: bytes) -> None:
        """The claimed request is answered (stored, dead-lettered, refused or gone): a repeat
        waiting for it looks at what it kept."""
        waiter = self._storing.pop(fingerprint, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def seen_once_stored(self, fingerprint: bytes, wait_s: float) -> float | None:
        """For a request whose claim() was refused: the entry (as seen() gives it) the request
        being stored left once it is answered, or None, the fingerprint then claimed for this
        one, when it kept nothing (a 503, a client gone: this one may be stored in its place).
        TimeoutError when none answers within wait_s: never a hang."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self.claim(fingerprint):
            waiter = self._storing[fingerprint]
            if waiter is None:
                waiter = self._storing[fingerprint] = loop.create_future()
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(waiter)  # one waiter's timeout is not the others'
            if (stored := self.seen(fingerprint)) is not None:
                return stored
        return None

    def __len__(self) -> int:
        return len(self._seen)
