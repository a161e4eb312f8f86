"""The records one webhook request becomes, sized so that Kafka takes them.

A request whose records Kafka refuses would be answered 503 every time, and its provider
would retry it for days; a batch whose events outgrow its body many times over (a long field
copied into every report) would take the process's memory. Both are kept as dead letters.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from switchboard.events import MessageEvent
from switchboard.producer_placement import SizedRecords, record_size
from switchboard.records import OutRecord, event_record, raw_body, raw_record
from switchboard.topics import ALL_TOPICS, DEFAULT_MAX_MESSAGE_BYTES, RAW

# A batch's events are a few times its body (ids, times and labels per report); far more means
# a field repeated into every event. The floor covers small bodies with many short reports.
EVENT_BYTES_PER_BODY_BYTE = 32
EVENT_BYTES_FLOOR = 1024 * 1024
# Room left in a topic's limit for the batch's framing (and the raw record's small key and
# headers, whose value alone is measured).
RECORD_ROOM_BYTES = 4096
_LIMITS = {topic.name: topic.max_message_bytes - RECORD_ROOM_BYTES for topic in ALL_TOPICS}


class Unstorable(Exception):
    """The request's events cannot go to Kafka; `reason` is safe to return and to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fitted_raw(envelope: dict[str, Any], received_at: datetime
               ) -> tuple[dict[str, Any], OutRecord]:
    """The raw record, its body in base64 when JSON escaping made it too large (control
    characters take six bytes each; base64 takes 4/3 of the body, which the size cap allows).

    Unstorable if even that is over the raw topic's limit: the body cap leaves room for an
    ordinary query and headers, not for a URL of many kilobytes next to the largest body."""
    record = raw_record(envelope, received_at)
    limit = _LIMITS[RAW.name]
    if len(record.value) > limit and envelope["body_encoding"] != "base64":
        body = base64.b64encode(raw_body(envelope)).decode()
        envelope = {**envelope, "body": body, "body_encoding": "base64"}
        record = raw_record(envelope, received_at)
    if len(record.value) > limit:
        raise Unstorable(f"the request would be {len(record.value)} bytes stored, over the "
                         f"{limit}-byte limit of {RAW.name}: send a shorter query or body")
    return envelope, record


def event_records(events: Sequence[MessageEvent], body_bytes: int) -> SizedRecords:
    """The events' records with their sizes (publish measures them no more), or Unstorable
    once one is over its topic's limit or all of them over the request's budget (checked as
    they are built, so memory stays bounded)."""
    budget = EVENT_BYTES_FLOOR + EVENT_BYTES_PER_BODY_BYTE * body_bytes
    records: list[OutRecord] = []
    sizes: list[int] = []
    total = 0
    for event in events:
        try:
            record = event_record(event)
        except Exception as exc:
            raise Unstorable(f"an event could not be serialized ({type(exc).__name__})") from exc
        # The whole record: an event's message id is in its `ce_subject` header too, its
        # contact in its key, and the broker refuses the record, not the value.
        size = record_size(record)
        limit = _LIMITS.get(record.topic, DEFAULT_MAX_MESSAGE_BYTES - RECORD_ROOM_BYTES)
        if size > limit:
            raise Unstorable(f"an event would be {size} bytes, over the {limit}-byte limit of "
                             f"{record.topic}")
        total += size
        if total > budget:
            raise Unstorable(f"the {len(events)} events would take over {budget} bytes "
                             f"({EVENT_BYTES_PER_BODY_BYTE} times the body and more): a field "
                             "is repeated into every event")
        records.append(record)
        sizes.append(size)
    return SizedRecords(records, sizes)
