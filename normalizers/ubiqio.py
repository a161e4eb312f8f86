"""Ubiqio webhooks -> message events. THE PAYLOAD SHAPES ARE INFERRED, NOT DOCUMENTED.

Ubiqio's public docs name a Status Webhook and an Inbound Webhook (sent to the URL in the
message template) but show no payload. This module reads what Ubiqio's send API suggests
(`toNumber`, `message`, `channel` SMS/MMS, `imageUrl`, `caption`, `clientRef`) plus the usual
names for an id, a status, a sender and a time, and rejects anything else with a reason that
lists the keys it looked for, so unknown shapes land in the dead-letter topic.

Keys are compared without case, `_` or `-` (`toNumber`, `to_number` and `TO-NUMBER` are the same
key). Reports may come one per request, in a list (`results`, `messages`, `events`,
`statuses`, `reports`, `items`, `data`) or wrapped in `data`/`payload`. JSON, form bodies and
(for an empty body) the query string are read. Accepted keys and mappings are listed in
docs/providers/ubiqio.md.

This module finds the reports, tells their kinds apart and reads inbound messages; status reports
are read by the private module _ubiqio_status, and _ubiqio_fields holds every field's accepted
spellings and the readers both share.
"""

from __future__ import annotations

from typing import Any

from normalizers._ubiqio_fields import (
    CLIENT_REF,
    IMAGE_URL,
    IN_REPLY_TO,
    INBOUND_FROM,
    INBOUND_TIME,
    INBOUND_TO,
    KIND_KEYS,
    MEDIA_LISTS,
    MESSAGE_ID,
    NOT_WORD,
    REPORT_FROM,
    SEGMENTS,
    STATUS,
    TEXT,
    address,
    first_of,
    report_channel,
    report_price,
    status_word,
    text_of,
)
from normalizers._ubiqio_status import status_from_event, status_report
from normalizers.base import Ack, JsonObject, NormalizeError, WebhookRequest, key_list
from normalizers.bodies import is_form, parse_json_object, request_form_pairs
from normalizers.event_builders import check_length, each_event, inbound_event
from normalizers.fields import Batch, as_list, int_field, loose_keys, text_field
from normalizers.times import parse_time
from switchboard.events import Media, MessageEvent, Status

NAME = "ubiqio"

_ACK = Ack(status_code=200)

# Most specific first.
_LIST_KEYS = ("results", "messages", "events", "statuses", "reports", "items", "data")
_WRAPPER_KEYS = ("data", "payload")
_INHERITED = ("event", "eventtype", "type", "kind", "webhooktype", "channel")
_CONTENT_KEYS = TEXT.keys + IMAGE_URL.keys + MEDIA_LISTS.keys
# Keys that make an object a report itself, so its lists are not taken for a batch.
_REPORT_KEYS = (*STATUS.keys, *REPORT_FROM.keys, *INBOUND_FROM.keys, "messageid", "msgid",
                "clientref")

# Event names that are pings or URL checks, not reports: acknowledged, no event.
_TEST_EVENTS = frozenset({"test", "ping", "webhooktest", "testwebhook", "verification",
                          "verify", "webhookverification", "urlverification", "healthcheck",
                          "heartbeat"})
_STATUS_HINTS = ("status", "dlr", "delivery", "receipt", "report")
_INBOUND_HINTS = ("inbound", "incoming", "received", "reply", "mo")
_INBOUND_STATUS_WORDS = frozenset({"received", "inbound", "incoming", "mo"})
# The report objects in a body: a list under a known key, a wrapper, or the body itself. Only
# kind and channel keys pass from an envelope to its reports.
_BATCH = Batch(list_keys=_LIST_KEYS, carried_keys=_INHERITED, max_depth=3,
               wrapper_keys=_WRAPPER_KEYS, report_keys=_REPORT_KEYS)


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    """One event per report, in order; test pings, URL checks and empty batches give none."""
    if request.method.upper() in ("GET", "HEAD") and not request.body.strip() \
            and not request.query:
        return []  # a bare URL check
    return each_event(request, _BATCH.reports(_payload(request)), _normalize_report,
                      where="report {}")


def acknowledge(request: WebhookRequest) -> Ack:
    """HTTP 200, the only success code Ubiqio's docs use (their send API answers 200 OK)."""
    return _ACK


# --- finding the reports ---------------------------------------------------------------------


def _payload(request: WebhookRequest) -> JsonObject:
    if not request.body.strip() and request.query:
        return request.query_fields
    if is_form(request):
        return dict(request_form_pairs(request))
    return parse_json_object(request.body)


def _normalize_report(request: WebhookRequest, report: JsonObject) -> MessageEvent | None:
    kind = _kind_hint(report)
    if kind == "test":
        return None
    if kind == "status":
        return status_report(request, report)
    if kind == "inbound":
        return _inbound(request, report)
    raw_status = first_of(report, STATUS)
    if raw_status is not None:
        # `status: "received"` with a sender and content is a message from a user.
        if (isinstance(raw_status, str) and status_word(raw_status) in _INBOUND_STATUS_WORDS
                and address(report, INBOUND_FROM) is not None
                and _has_content(_content(report))):
            return _inbound(request, report)
        return status_report(request, report)
    event_status = status_from_event(report)
    if event_status is not None and event_status[1] is not Status.ACCEPTED:
        # `message.delivered` is about a message we sent, even with our `from` and its text:
        # read as inbound, it would be our own message coming back to the bots.
        return status_report(request, report)
    if address(report, INBOUND_FROM) is not None:
        return _inbound(request, report)
    if event_status is not None:
        return status_report(request, report)
    raise NormalizeError(
        "not a recognised Ubiqio webhook (its shape is inferred, not documented): expected a "
        "status report with 'status' and 'messageId' or 'clientRef', or an inbound message "
        f"with 'fromNumber' and 'message' or 'imageUrl'; got keys {key_list(report)}"
    )


def _kind_hint(report: JsonObject) -> str | None:
    """"status", "inbound" or "test" from an event/type name; None when it says nothing."""
    for key in KIND_KEYS:
        value = report.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        check_length(f"{key!r}", value)  # an event name; it may be in every report of a batch
        name = value.strip().lower()
        if NOT_WORD.sub("", name) in _TEST_EVENTS:
            return "test"
        if any(hint in name for hint in _STATUS_HINTS):
            return "status"
        words = set(NOT_WORD.split(name))
        if any(hint in words or (len(hint) > 2 and hint in name) for hint in _INBOUND_HINTS):
            return "inbound"
    return None


# --- inbound messages ------------------------------------------------------------------------


def _inbound(request: WebhookRequest, report: JsonObject) -> MessageEvent:
    sender = address(report, INBOUND_FROM)
    if sender is None:
        raise NormalizeError(
            f"inbound message has no sender (looked for {INBOUND_FROM}); "
            f"got keys {key_list(report)}"
        )
    content = _content(report)
    if not _has_content(content):
        raise NormalizeError(
            f"inbound message has no content (looked for {TEXT}, {IMAGE_URL}, {MEDIA_LISTS})"
        )
    media = _media(content)
    text = text_of(content, TEXT)
    caption = text_field(content, "caption")
    if caption is not None and caption != text and first_of(content, IMAGE_URL) is None:
        # An MMS whose image came without a URL: no media item (v1 needs one), but the words
        # sent with it are kept after the text, as add_file keeps them for other providers.
        text = caption if text is None else f"{text}\n{caption}"
    return inbound_event(
        request,
        channel=report_channel(report, has_media=bool(media)),
        message_id=text_of(report, MESSAGE_ID),
        sender=sender,
        recipient=address(report, INBOUND_TO),
        text=text,
        media=media,
        in_reply_to=text_of(report, IN_REPLY_TO),
        correlation_id=text_of(report, CLIENT_REF),
        segments=int_field(report, *SEGMENTS.keys),
        price=report_price(report),
        occurred_at=parse_time(first_of(report, INBOUND_TIME)),
    )


def _content(report: JsonObject) -> JsonObject:
    """Where the text and media are: the report, or its `message` when that is an object."""
    nested = report.get("message")
    if isinstance(nested, dict):
        return {**{k: v for k, v in report.items() if k != "message"}, **loose_keys(nested)}
    return report


def _has_content(content: JsonObject) -> bool:
    """Text (even empty: an empty SMS is still a message) or something that may be media."""
    return any(key in content for key in _CONTENT_KEYS)


def _media(content: JsonObject) -> list[Media]:
    """`imageUrl` (+ `caption`) as Ubiqio's send API has it, or lists of URLs or objects."""
    media: list[Media] = []
    url = first_of(content, IMAGE_URL)
    if isinstance(url, str):
        media.append(Media.build(url=url, caption=text_field(content, "caption")))
    elif url is not None:
        raise NormalizeError(f"'imageUrl' should be a URL string, got {type(url).__name__}")
    for key in MEDIA_LISTS.keys:
        for index, item in enumerate(as_list(content.get(key))):
            media.append(_media_item(item, f"{key}[{index}]"))
    return media


def _media_item(item: Any, where: str) -> Media:
    if isinstance(item, str) and item.strip():
        return Media.build(url=item.strip())
    if isinstance(item, dict):
        fields = loose_keys(item)
        url = text_field(fields, "url", "imageurl", "mediaurl", "fileurl", "link")
        if url is not None:
            return Media.build(url=url,
                               content_type=text_field(fields, "contenttype", "mimetype", "mime"),
                               caption=text_field(fields, "caption"))
    raise NormalizeError(f"{where} should be a URL or an object with a 'url'")
