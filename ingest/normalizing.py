"""What a webhook's body becomes: its events and their records, or why it has none that can be
kept (a Failure: the answer's status, code and message). Ingest calls these as a request
arrives, `switchboard replay` on a dead letter; large bodies are worked on off the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from ingest.dedup import Failure
from ingest.stored import Unstorable, event_records
from normalizers import NormalizeError, WebhookRequest, normalize
from normalizers.base import shown
from switchboard.events import MessageEvent
from switchboard.failure_text import traceback_without_text
from switchboard.logs import get_logger
from switchboard.producer_placement import SizedRecords
from switchboard.records import short

log = get_logger(__name__)

ACCEPTED_MEDIA_TYPES = frozenset({
    "", "application/json", "text/json", "application/xml", "text/xml",
    "application/x-www-form-urlencoded", "text/plain",
})
# Said in the 415: each one, as the sender has to write it.
ACCEPTED_SAID = ", ".join(sorted(ACCEPTED_MEDIA_TYPES - {""})) + " or no content type"
# Past this, a body's normalization and records are built off the event loop: a thread hop
# costs tens of microseconds, such a body milliseconds to seconds of work.
OFF_LOOP_BODY_BYTES = 64 * 1024
# One thread for them all. The work is pure Python: under the GIL a second thread would not run
# beside the first, only take turns from the event loop (every CPU-bound thread takes as many
# as the loop gets). Its own pool also leaves the loop's default one (which resolves host names
# on asyncio's own loop) free of second-long jobs.
_OFF_LOOP = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-normalize")

P = ParamSpec("P")
T = TypeVar("T")


async def off_loop_if_large(body_bytes: int, function: Callable[P, T], *args: P.args,
                            **kwargs: P.kwargs) -> T:
    """Call `function` here for a usual body, on the worker thread for a large one: a 1 MiB
    batch is about a second of pure Python, and on the event loop it would hold up every
    other request for that long (the thread gives the loop its turn every few milliseconds).
    Large bodies queue for the thread, and the call sees this task's context variables."""
    if body_bytes < OFF_LOOP_BODY_BYTES:
        return function(*args, **kwargs)
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_OFF_LOOP, call)


def content_coding(header: str) -> str:
    """A Content-Encoding header as the coding it names, "" for none: `identity` is none, and
    codings are case-insensitive (RFC 9110), so `GZIP` and `gzip` are one."""
    coding = header.strip().lower()
    return "" if coding == "identity" else coding


def normalized(webhook: WebhookRequest) -> tuple[list[MessageEvent], Failure | None]:
    """The request's events, or why it has none that can be kept: what ingest does with a
    request as it arrives, and `switchboard replay` with one kept as a dead letter."""
    if webhook.media_type not in ACCEPTED_MEDIA_TYPES:
        return [], (415, "unsupported_media_type",
                    f"content type {webhook.media_type!r} is not accepted; send {ACCEPTED_SAID}")
    # A compressed body would otherwise be parsed as it is, and refused as broken JSON or XML.
    # No provider we read compresses its webhooks, and none says whether it signs the bytes
    # before or after: refused by name, so the setting to change is plain.
    encoding = webhook.headers.get("content-encoding", "")
    if content_coding(encoding):
        return [], (415, "unsupported_content_encoding",
                    f"content encoding {shown(encoding, 40)} is not accepted; send the body "
                    "uncompressed")
    try:
        return normalize(webhook), None
    except NormalizeError as exc:
        if exc.__cause__ is not None:  # a normalizer bug, not just a bad payload
            log.error("normalizer crashed", provider=webhook.provider,
                      exception=traceback_without_text(exc.__cause__))
        return [], (400, "unprocessable_payload", short(exc.reason))


def storable(events: list[MessageEvent], body_bytes: int
             ) -> tuple[SizedRecords, Failure | None]:
    """The events' records and their sizes, or why Kafka cannot take them (see
    ingest.stored)."""
    try:
        return event_records(events, body_bytes), None
    except Unstorable as exc:
        if exc.__cause__ is not None:
            log.error("event not serializable", provider=events[0].provider,
                      exception=traceback_without_text(exc.__cause__))
        return SizedRecords(), (400, "unprocessable_payload", exc.reason)
