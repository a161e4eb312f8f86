"""`switchboard replay`: publish again what dead letters (or raw requests) stand for."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta

from switchboard.settings import Settings

_AGO = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(text: str, now: datetime) -> datetime:
    """`30m`, `2h`, `7d` (that long before now) or an ISO 8601 time (UTC unless it says)."""
    ago = _AGO.fullmatch(text.strip())
    if ago:
        return now - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither a time like 2026-11-20T08:00:00Z nor a "
                         "span like 30m, 2h or 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every selected letter was replayed, 3 when some still fail or were skipped,
    1 when Kafka failed, 2 for bad arguments."""
    from aiokafka.errors import KafkaConnectionError

    from ingest.replay import ReplayError, Selection, replay

    if not settings.kafka_bootstrap_servers:
        print("error: set KAFKA_BOOTSTRAP_SERVERS (the run command prints it)", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    try:
        since = parse_when(args.since, now) if args.since else None
        until = parse_when(args.until, now) if args.until else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.source == "raw" and since is None:
        print("error: --source raw needs --since: it replays every webhook of the window",
              file=sys.stderr)
        return 2
    stages = {s if s in ("normalize", "raw") or s.startswith("worker:") else f"worker:{s}"
              for s in args.stage}
    selection = Selection(providers=frozenset(args.provider), accounts=frozenset(args.account),
                          stages=frozenset(stages), ids=frozenset(args.id))

    def emit(line: bytes) -> None:
        sys.stdout.buffer.write(line + b"\n")
        sys.stdout.flush()

    try:
        summary = asyncio.run(replay(
            settings.kafka_connection(), source=args.source,
            since_ms=int(since.timestamp() * 1000) if since else None,
            until_ms=int(until.timestamp() * 1000) if until else None,
            selection=selection, dry_run=args.dry_run, emit=emit))
    except KafkaConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts = summary.counts
    done = counts.get("replayed", 0) + counts.get("replayable", 0)
    total = sum(counts.values())
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {done} of {total} ({summary.records} records); "
          f"{counts.get('failing', 0)} still fail, {counts.get('skipped', 0)} skipped",
          file=sys.stderr)
    return 0 if done == total else 3
