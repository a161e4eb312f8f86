"""The sends the simulator accepted, kept so tests can check what a client really sent."""

from __future__ import annotations

from collections import deque

from simulator.base import ReceivedSend

# Long benchmark runs must not grow memory without bound; tests never get near this.
MAX_RECORDS = 100_000


class SendRecorder:
    """Accepted sends in arrival order (faulted sends are never recorded, slow ones are)."""

    def __init__(self, limit: int = MAX_RECORDS) -> None:
        self._sends: deque[ReceivedSend] = deque(maxlen=limit)

    def add(self, send: ReceivedSend) -> None:
        self._sends.append(send)

    def find(self, *, account: str | None = None, provider: str | None = None
             ) -> list[ReceivedSend]:
        return [send for send in self._sends
                if (account is None or send.account == account)
                and (provider is None or send.provider == provider)]

    def clear(self) -> int:
        count = len(self._sends)
        self._sends.clear()
        return count

    def __len__(self) -> int:
        return len(self._sends)
