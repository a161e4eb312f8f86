"""switchboard.throttle: a line per kind and window, the rest counted."""

from __future__ import annotations

import logging
from typing import Any

from switchboard.throttle import Lazy, ThrottledLog


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str, dict[str, Any]]] = []

    def log(self, level: int, event: str, **fields: Any) -> None:
        self.lines.append((level, event, fields))


async def test_kinds_are_told_apart_by_their_fields_only_up_to_max_kinds() -> None:
    """The fields that say which one it was (an offset) do not make a kind: the kind's own
    do, and past max_kinds new kinds are only counted."""
    logger = Lines()
    throttled = ThrottledLog(logger, window_s=60, max_kinds=2)
    for offset in range(5):
        throttled(logging.WARNING, "failed", {"worker": "a"}, offset=offset)
        throttled(logging.WARNING, "failed", {"worker": "b"}, offset=offset)
        throttled(logging.WARNING, "failed", {"worker": "c"}, offset=offset)
    assert logger.lines == [(logging.WARNING, "failed", {"worker": "a", "offset": 0}),
                            (logging.WARNING, "failed", {"worker": "b", "offset": 0})]
    throttled.flush()
    assert logger.lines[2:] == [
        (logging.WARNING, "failed: 4 more in the last 60 s", {"worker": "a", "more": 4}),
        (logging.WARNING, "failed: 4 more in the last 60 s", {"worker": "b", "more": 4}),
        (logging.WARNING, "failed: 5 more in the last 60 s, of other kinds", {"more": 5})]
    throttled(logging.WARNING, "failed", {"worker": "c"}, offset=9)  # a new window
    assert logger.lines[-1] == (logging.WARNING, "failed", {"worker": "c", "offset": 9})
    throttled.flush()


async def test_a_lazy_field_is_made_only_for_a_line_logged() -> None:
    """A worker's retry line carries a formatted traceback: during an outage it was made for
    every record's every retry, and all but the window's first line thrown away."""
    logger, made = Lines(), []

    def traceback() -> str:
        made.append(1)
        return "Traceback ..."

    throttled = ThrottledLog(logger, window_s=60)
    for offset in range(50):
        throttled(logging.WARNING, "failed", {"worker": "a"}, offset=offset,
                  exception=Lazy(traceback))
    assert logger.lines == [(logging.WARNING, "failed",
                             {"worker": "a", "offset": 0, "exception": "Traceback ..."})]
    assert len(made) == 1
    throttled.flush()
