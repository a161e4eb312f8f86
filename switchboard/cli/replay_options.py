"""`switchboard replay`'s options read and checked: the window, the stages, the reasons."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

_AGO = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_when(text: str, now: datetime) -> datetime:
    """`30m`, `2h`, `7d` (that long before now) or an ISO 8601 time (UTC unless it says)."""
    ago = _AGO.fullmatch(text.strip())
    try:
        if ago:
            when = now - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
        else:
            when = datetime.fromisoformat(text.strip())
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is neither a time like 2026-11-20T08:00:00Z nor a "
                         "span like 30m, 2h or 7d") from None
    if when < _EPOCH:
        raise ValueError(f"{text!r} is before 1970, older than any Kafka record")
    return when


def parse_window(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """--since and --until as epoch milliseconds, or ValueError saying what is wrong."""
    now = datetime.now(UTC)
    # An empty value (`--since "$SINCE"` with the variable unset) is refused, not taken as
    # absent: that would quietly widen the window to the whole topic.
    since = parse_when(args.since, now) if args.since is not None else None
    until = parse_when(args.until, now) if args.until is not None else None
    if since and until and since > until:
        raise ValueError(f"--since ({since.isoformat()}) is after --until ({until.isoformat()})")
    if args.source == "raw" and since is None:
        raise ValueError("--source raw needs --since: it replays every webhook of the window")
    if args.source == "raw" and args.stage:
        raise ValueError("--stage is for dead letters; every raw request has stage raw")
    return (int(since.timestamp() * 1000) if since else None,
            int(until.timestamp() * 1000) if until else None)


def parse_stages(given: list[str]) -> frozenset[str]:
    """--stage values as letters name them (`worker:` before a worker's name), or ValueError
    naming the stages there are: a misspelt one matched no letter, and replay ended with "0 of
    0", exit 0, as if nothing were left to replay. A custom bot's name is the user's, so any
    `bot-…` is taken."""
    from consumers.workers import WORKERS

    stages = set()
    for stage in given:
        name = stage.removeprefix("worker:")
        if stage == "normalize":
            stages.add(stage)
        elif name in WORKERS or (name.startswith("bot-") and len(name) > len("bot-")):
            stages.add(f"worker:{name}")
        else:
            raise ValueError(
                f"unknown --stage {stage!r}: a stage is normalize or a worker's name "
                f"(worker: before it may be left out): {', '.join(WORKERS)}, or "
                "bot-<module>-<function> for `worker bot --bot module:function`")
    return frozenset(stages)


def parse_reasons(given: list[str], source: str) -> frozenset[str]:
    """--reason values, or ValueError: an empty one (`--reason "$WHY"` with the variable unset)
    is in every reason, and would quietly replay the whole window."""
    if given and source == "raw":
        raise ValueError("--reason is for dead letters; a raw request was kept with no reason")
    for text in given:
        if not text.strip():
            raise ValueError(f"--reason {text!r} is blank, and nearly every reason holds "
                             "that; give a text the reasons to replay hold")
    return frozenset(given)
