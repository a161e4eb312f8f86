"""Log lines about refused requests, once per kind and minute (the metrics count each one)."""

from __future__ import annotations

import asyncio
from typing import Any


class RefusalLog:
    """Log lines about refused requests (unknown account, failed authentication, a body too
    large or too slow), each one once per window and then a count of its repeats.

    Anyone on the internet can send these, and a provider set up with a wrong secret retries
    each webhook for hours: one line per request buried everything else. The first line of a
    kind (its event and fields: provider, account, reason) in a window is logged; repeats are
    held back and summed up in one line when the window ends ("N more in the last 60 s"). The
    request counter still counts every one. At most `max_kinds` kinds are told apart in a
    window (a scanner can invent any number of account names): past that, new ones are only
    counted, per event, and summed up with the rest.
    """

    def __init__(self, logger: Any, window_s: float = 60.0, max_kinds: int = 100) -> None:
        self.log = logger
        self.window_s = window_s
        self.max_kinds = max_kinds
        # (level, event, fields) -> how many were held back in this window
        self._held: dict[tuple[int, str, tuple[tuple[str, Any], ...]], int] = {}
        self._untold: dict[tuple[int, str], int] = {}  # new kinds past max_kinds, per event
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, level: int, event: str, *, example: dict[str, Any] | None = None,
                 **fields: Any) -> None:
        """`fields` tell kinds apart; `example` (what a scanner varies at will: the path it
        probes) is shown on the window's first line of the kind, and does not."""
        key = (level, event, tuple(fields.items()))
        held = self._held.get(key)
        if held is not None:
            self._held[key] = held + 1
            return
        if len(self._held) >= self.max_kinds:
            self._untold[level, event] = self._untold.get((level, event), 0) + 1
            return
        self._held[key] = 0
        if self._timer is None:  # a window starts with the first line after a quiet one
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self.flush)
        self.log.log(level, event, **fields, **(example or {}))

    def flush(self) -> None:
        """Sum up the window's held-back lines and start afresh (at a window's end, and when
        ingest stops, so no count is lost)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        within = f"{self.window_s:g} s"
        for (level, event, fields), held in self._held.items():
            if held:
                self.log.log(level, f"{event}: {held} more in the last {within}",
                             **dict(fields), more=held)
        for (level, event), untold in self._untold.items():
            self.log.log(level, f"{event}: {untold} more in the last {within}, for other "
                         "providers, accounts or reasons", more=untold)
        self._held.clear()
        self._untold.clear()
