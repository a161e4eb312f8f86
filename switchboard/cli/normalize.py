"""`switchboard normalize`: a captured webhook's events, without Kafka or a server (to check
a provider payload, or write a fixture)."""

from __future__ import annotations

import argparse
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from switchboard.settings import Settings


def _as_received(query: str) -> str:
    """A typed query as ingest hands it on: its bytes read as Latin-1, which the normalizers
    turn back into bytes before decoding them as UTF-8. The bytes are the ones given, UTF-8
    or not (Python keeps argv bytes that are not as surrogates): a captured query in another
    encoding gets the normalizer's own answer, as at ingest."""
    return query.encode("utf-8", "surrogateescape").decode("latin-1")


def cmd_normalize(args: argparse.Namespace, settings: Settings) -> int:
    """Print the events of one captured webhook as JSON lines (exit 2 with the reason if bad)."""
    from normalizers import NormalizeError, WebhookRequest, normalize

    if args.file is None and args.query and sys.stdin.isatty():
        # A GET status report is all query: nothing is typed after the command, and waiting
        # for it (until Ctrl-D) looked like a hang. `-` still reads a body typed or pasted.
        body = b""
    elif args.file in (None, "-"):
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(args.file).read_bytes()
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
    content_type = args.content_type or _guess_content_type(args.file, body)
    method = args.method or ("GET" if not body.strip() and args.query else "POST")
    request = WebhookRequest(
        provider=args.provider, account=args.account, body=body, received_at=datetime.now(UTC),
        raw_id="cli", content_type=content_type, query=_as_received(args.query or ""),
        method=method,
    )
    try:
        events = normalize(request)
    except NormalizeError as exc:
        if exc.__cause__ is not None:  # a normalizer bug: here, on your terminal, in full
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    for event in events:
        sys.stdout.buffer.write(event.to_json() + b"\n")
    return 0


def _guess_content_type(name: str | None, body: bytes) -> str:
    start = body.lstrip()[:1]
    if (name or "").endswith(".xml") or start == b"<":
        return "application/xml"
    if start in (b"{", b"["):
        return "application/json"
    if b"=" in body:
        return "application/x-www-form-urlencoded"
    return "application/json"
