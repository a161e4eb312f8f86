"""Remembers recently stored webhooks so exact provider retries are not published twice.

Bounded in entries and age: memory stays flat whatever the traffic. This is a courtesy to
consumers, not a guarantee (it is per process and forgets); event ids are the guarantee.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict


class RecentRequests:
    def __init__(self, max_entries: int = 100_000, ttl_s: float = 600.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    @staticmethod
    def fingerprint(*parts: bytes | str) -> bytes:
        digest = hashlib.blake2b(digest_size=16)
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.digest()

    def seen(self, fingerprint: bytes, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        stored = self._seen.get(fingerprint)
        if stored is None:
            return False
        if now - stored > self.ttl_s:
            del self._seen[fingerprint]
            return False
        return True

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

    def __len__(self) -> int:
        return len(self._seen)
