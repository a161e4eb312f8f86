"""Log lines that come at the rate of their cause (Kafka or a provider away, a scanner) said in
full once per kind and window, then summed up in one line: the metrics count every one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from switchboard.tasklog import detached

_Kind = tuple[int, str, tuple[tuple[str, Any], ...]]


@dataclass(frozen=True, slots=True)
class Lazy:
    """A field's value made only if its line is logged: most lines of an outage are held back,
    and some values cost more than the line (a formatted traceback: about 100 µs)."""

    make: Callable[[], Any]


class ThrottledLog:
    """The first line of a kind in a window is logged with all its fields; later ones of the
    kind are counted and summed up when the window ends ("EVENT: N more in the last 60 s",
    with the kind's fields and `more`). A kind is the level, the event and `kind`'s fields
    (who and why: a worker and the error's type, a provider and account), not the other
    fields, which say which one it was (a record's offset): one line per kind tells an
    outage, and thousands of records caught in it add nothing but their count.

    At most `max_kinds` kinds are told apart in a window (kinds a caller cannot bound, such
    as account names a scanner invents): past that, new ones are only counted, per event, and
    summed up with the rest. A window starts with the first line after a quiet one; `flush`
    ends it early (on a stop, so no count is lost).
    """

    def __init__(self, logger: Any, window_s: float = 60.0, max_kinds: int = 100) -> None:
        self.log = logger
        self.window_s = window_s
        self.max_kinds = max_kinds
        self._held: dict[_Kind, int] = {}  # kind -> how many were held back in this window
        self._untold: dict[tuple[int, str], int] = {}  # new kinds past max_kinds, per event
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, level: int, event: str, kind: Mapping[str, Any], **fields: Any) -> None:
        key = (level, event, tuple(kind.items()))
        held = self._held.get(key)
        if held is not None:
            self._held[key] = held + 1
            return
        if len(self._held) >= self.max_kinds:
            self._untold[level, event] = self._untold.get((level, event), 0) + 1
            return
        self._held[key] = 0
        if self._timer is None:  # its sums are of many lines: they name no one's record
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self.flush,
                                                                context=detached())
        self.log.log(level, event, **kind, **{name: value.make() if isinstance(value, Lazy)
                                              else value for name, value in fields.items()})

    def flush(self) -> None:
        """Sum up the window's held-back lines and start afresh."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        within = f"{self.window_s:g} s"
        for (level, event, kind), held in self._held.items():
            if held:
                self.log.log(level, f"{event}: {held} more in the last {within}", **dict(kind),
                             more=held)
        for (level, event), untold in self._untold.items():
            self.log.log(level, f"{event}: {untold} more in the last {within}, of other kinds",
                         more=untold)
        self._held.clear()
        self._untold.clear()
