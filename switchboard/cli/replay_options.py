"""`switchboard replay`'s options read and checked: the window, the stages, the reasons."""

from __future__ import annotations

import argparse
import re
import shlex
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
    return (_epoch_ms(since) if since else None, _epoch_ms(until) if until else None)


def _epoch_ms(when: datetime) -> int:
    """Exact, not through a float: the time a stopped replay prints is read back to the same
    millisecond, not the one before it (a letter outside the window)."""
    return (when - _EPOCH) // timedelta(milliseconds=1)


def _iso_ms(epoch_ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=epoch_ms)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


_POSITION = re.compile(r"(\d+):(\d+)")


def parse_after(text: str | None) -> dict[int, int]:
    """--after `PARTITION:OFFSET,…` (as a stopped replay prints it), or ValueError."""
    if text is None:
        return {}
    after: dict[int, int] = {}
    for item in text.split(","):
        position = _POSITION.fullmatch(item.strip())
        if position is None:
            raise ValueError(f"--after {text!r}: each of its parts is PARTITION:OFFSET, as a "
                             "stopped replay prints it (e.g. 0:1234,2:17)")
        partition, offset = int(position[1]), int(position[2])
        if partition in after:
            raise ValueError(f"--after {text!r} names partition {partition} twice")
        after[partition] = offset
    return after


def continuing(args: argparse.Namespace, since_ms: int | None, until_ms: int | None,
               settled: dict[int, int]) -> str:
    """The command that replays the rest of a stopped replay's window and none of what it got
    through: its options, with the window's ends as the times they stood for (`--since 2d`
    moves on as time passes), and `--after` where it got to in each partition."""
    words = ["switchboard", "replay"]
    if args.source != "dead-letter":
        words += ["--source", args.source]
    if since_ms is not None:
        words += ["--since", _iso_ms(since_ms)]
    if until_ms is not None:
        words += ["--until", _iso_ms(until_ms)]
    for option, values in (("--provider", args.provider), ("--account", args.account),
                           ("--stage", args.stage), ("--id", args.id),
                           ("--reason", args.reason)):
        for value in values:
            words += [option, value]
    if args.include_old:
        words.append("--include-old")
    if settled:
        words += ["--after", ",".join(f"{partition}:{offset}"
                                      for partition, offset in sorted(settled.items()))]
    return shlex.join(words)


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
