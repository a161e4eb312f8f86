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
"""

from __future__ import annotations

import re
from typing import Any

from normalizers.base import Ack, JsonObject, NormalizeError, WebhookRequest, key_list
from normalizers.bodies import is_form, parse_json_object, request_form_pairs
from normalizers.channels import channel
from normalizers.event_builders import check_length, each_event, inbound_event, status_event
from normalizers.fields import (
    Batch,
    as_list,
    first,
    int_field,
    loose_key,
    loose_keys,
    number_text,
    text_field,
)
from normalizers.prices import price
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, Media, MessageEvent, Price, ProviderStatus, Status

NAME = "ubiqio"

_ACK = Ack(status_code=200)


class _Names:
    """The accepted spellings of one field: as shown in errors and docs, and as compared."""

    __slots__ = ("keys", "shown")

    def __init__(self, *shown: str) -> None:
        self.shown = shown
        self.keys = tuple(loose_key(name) for name in shown)

    def __str__(self) -> str:
        return ", ".join(self.shown)


# Most specific first.
_LIST_KEYS = ("results", "messages", "events", "statuses", "reports", "items", "data")
_WRAPPER_KEYS = ("data", "payload")
_INHERITED = ("event", "eventtype", "type", "kind", "webhooktype", "channel")
_KIND_KEYS = ("event", "eventtype", "webhooktype", "kind", "type")
_MESSAGE_ID = _Names("messageId", "msgId", "messageUuid", "messageSid", "id")
_CLIENT_REF = _Names("clientRef", "clientReference", "reference", "ref", "correlationId",
                     "externalId")
# `msisdn` is the end user's number: the recipient of a report, the sender of an inbound.
_REPORT_TO = _Names("toNumber", "to", "recipient", "destination", "msisdn", "phoneNumber",
                    "mobileNumber")
_REPORT_FROM = _Names("fromNumber", "from", "sender", "senderId", "originator")
_INBOUND_FROM = _Names("fromNumber", "from", "sender", "originator", "msisdn", "phoneNumber",
                       "mobileNumber")
_INBOUND_TO = _Names("toNumber", "to", "recipient", "destination", "shortCode")
_STATUS = _Names("status", "messageStatus", "deliveryStatus", "state")
_STATUS_CODE = _Names("statusCode")
_STATUS_TEXT = _Names("statusDescription", "statusMessage", "description")
_ERROR = _Names("error", "errors")
_ERROR_CODE = _Names("errorCode")
_ERROR_TEXT = _Names("errorMessage", "errorDescription", "statusReason", "reason")
_STATUS_TIME = _Names("timestamp", "statusTime", "statusAt", "statusDate", "updatedAt",
                      "deliveredAt", "deliveryTime", "doneAt", "sentAt", "eventTime", "time",
                      "dateTime", "date", "createdAt")
_INBOUND_TIME = _Names("receivedAt", "receivedTime", "timestamp", "eventTime", "time",
                       "dateTime", "date", "createdAt", "sentAt")
_TEXT = _Names("message", "text", "body", "content", "messageText")
_IMAGE_URL = _Names("imageUrl", "mediaUrl", "url")
_MEDIA_LISTS = _Names("mediaUrls", "media", "attachments", "images")
_IN_REPLY_TO = _Names("inReplyTo", "replyToMessageId", "originalMessageId")
_SEGMENTS = _Names("segments", "segmentCount", "numSegments", "messageCount", "smsCount")
_PRICE = _Names("price", "cost")
_CONTENT_KEYS = _TEXT.keys + _IMAGE_URL.keys + _MEDIA_LISTS.keys
# Keys that make an object a report itself, so its lists are not taken for a batch.
_REPORT_KEYS = (*_STATUS.keys, *_REPORT_FROM.keys, *_INBOUND_FROM.keys, "messageid", "msgid",
                "clientref")

# Event names that are pings or URL checks, not reports: acknowledged, no event.
_TEST_EVENTS = frozenset({"test", "ping", "webhooktest", "testwebhook", "verification",
                          "verify", "webhookverification", "urlverification", "healthcheck",
                          "heartbeat"})
_STATUS_HINTS = ("status", "dlr", "delivery", "receipt", "report")
_INBOUND_HINTS = ("inbound", "incoming", "received", "reply", "mo")
_INBOUND_STATUS_WORDS = frozenset({"received", "inbound", "incoming", "mo"})

# Status words (lower case, runs of other characters as "_"). Unlisted words map to unknown.
_STATUSES = {
    "accepted": Status.ACCEPTED,
    "queued": Status.ACCEPTED,
    "pending": Status.ACCEPTED,
    "processing": Status.ACCEPTED,
    "processed": Status.ACCEPTED,
    "created": Status.ACCEPTED,
    "scheduled": Status.SCHEDULED,
    "sent": Status.SENT,
    "submitted": Status.SENT,
    "dispatched": Status.SENT,
    "enroute": Status.SENT,
    "sending": Status.ACCEPTED,
    "acceptd": Status.ACCEPTED,  # SMPP receipt spelling
    "buffered": Status.SENT,
    "delivered_to_operator": Status.SENT,  # reached the carrier, not the handset
    "delivered_to_carrier": Status.SENT,
    "delivered": Status.DELIVERED,
    "delivrd": Status.DELIVERED,  # SMPP receipt spelling
    "delivered_to_handset": Status.DELIVERED,
    "read": Status.SEEN,
    "seen": Status.SEEN,
    "failed": Status.FAILED,
    "failure": Status.FAILED,
    "error": Status.FAILED,
    "undelivered": Status.UNDELIVERED,
    "undeliverable": Status.UNDELIVERED,
    "undeliv": Status.UNDELIVERED,  # SMPP
    "not_delivered": Status.UNDELIVERED,
    "delivery_failed": Status.UNDELIVERED,
    "rejected": Status.REJECTED,
    "rejectd": Status.REJECTED,  # SMPP
    "blocked": Status.REJECTED,
    "expired": Status.EXPIRED,
    "deleted": Status.DELETED,
}
_FAILURES = frozenset({Status.FAILED, Status.UNDELIVERED, Status.REJECTED, Status.EXPIRED})
_NOT_WORD = re.compile(r"[^a-z0-9]+")
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
        return _status(request, report)
    if kind == "inbound":
        return _inbound(request, report)
    raw_status = _first(report, _STATUS)
    if raw_status is not None:
        # `status: "received"` with a sender and content is a message from a user.
        if (isinstance(raw_status, str) and _word(raw_status) in _INBOUND_STATUS_WORDS
                and _address(report, _INBOUND_FROM) is not None
                and _has_content(_content(report))):
            return _inbound(request, report)
        return _status(request, report)
    event_status = _event_status(report)
    if event_status is not None and event_status[1] is not Status.ACCEPTED:
        # `message.delivered` is about a message we sent, even with our `from` and its text:
        # read as inbound, it would be our own message coming back to the bots.
        return _status(request, report)
    if _address(report, _INBOUND_FROM) is not None:
        return _inbound(request, report)
    if event_status is not None:
        return _status(request, report)
    raise NormalizeError(
        "not a recognised Ubiqio webhook (its shape is inferred, not documented): expected a "
        "status report with 'status' and 'messageId' or 'clientRef', or an inbound message "
        f"with 'fromNumber' and 'message' or 'imageUrl'; got keys {key_list(report)}"
    )


def _kind_hint(report: JsonObject) -> str | None:
    """"status", "inbound" or "test" from an event/type name; None when it says nothing."""
    for key in _KIND_KEYS:
        value = report.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        check_length(f"{key!r}", value)  # an event name; it may be in every report of a batch
        name = value.strip().lower()
        if _NOT_WORD.sub("", name) in _TEST_EVENTS:
            return "test"
        if any(hint in name for hint in _STATUS_HINTS):
            return "status"
        words = set(_NOT_WORD.split(name))
        if any(hint in words or (len(hint) > 2 and hint in name) for hint in _INBOUND_HINTS):
            return "inbound"
    return None


def _event_status(report: JsonObject) -> tuple[str, Status] | None:
    """A status named by the event itself (`message.delivered`, `sms_failed`), if any."""
    for key in _KIND_KEYS:
        value = report.get(key)
        if isinstance(value, str) and value.strip():
            words = [word for word in _NOT_WORD.split(value.lower()) if word]
            if words and words[-1] in _STATUSES:
                return value, _STATUSES[words[-1]]
    return None


# --- status reports --------------------------------------------------------------------------


def _status(request: WebhookRequest, report: JsonObject) -> MessageEvent:
    raw_status = _first(report, _STATUS)
    event_status = _event_status(report)
    if raw_status is None:
        if event_status is None:
            raise NormalizeError(
                f"status report has no status (looked for {_STATUS}, or an event name ending "
                f"in a status word such as 'message.delivered'); got keys {key_list(report)}"
            )
        raw_status = event_status[0]
    provider_status = _provider_status(report, raw_status)
    status = _map_status(provider_status)
    if status is Status.UNKNOWN and event_status is not None:
        status = event_status[1]  # e.g. {"event": "message.delivered", "status": "SUCCESS"}
    message_id = _text(report, _MESSAGE_ID)
    correlation_id = _text(report, _CLIENT_REF)
    if message_id is None and correlation_id is None:
        raise NormalizeError(
            f"status report names no message (looked for {_MESSAGE_ID}, {_CLIENT_REF})"
        )
    return status_event(
        request,
        channel=_channel(report, has_media=first(report, "imageurl", "mediaurl") is not None),
        status=status,
        message_id=message_id,
        correlation_id=correlation_id,
        sender=_address(report, _REPORT_FROM),
        recipient=_address(report, _REPORT_TO),
        error=_error(report, status, provider_status),
        provider_status=provider_status,
        segments=int_field(report, *_SEGMENTS.keys),
        price=_price(report),
        occurred_at=parse_time(_first(report, _STATUS_TIME)),
    )


def _provider_status(report: JsonObject, raw_status: Any) -> ProviderStatus:
    if isinstance(raw_status, dict):
        fields = loose_keys(raw_status)
        return ProviderStatus.build(
            code=text_field(fields, "code", "id", "statuscode"),
            name=text_field(fields, "name", "status", "state", "value"),
            group=text_field(fields, "groupname", "group", "groupid"),
            description=text_field(fields, "description", "message", "text"),
        )
    if isinstance(raw_status, (str, int, float)) and not isinstance(raw_status, bool):
        return ProviderStatus.build(
            code=_text(report, _STATUS_CODE),
            name=raw_status if isinstance(raw_status, str) else number_text(raw_status, "status"),
            description=_text(report, _STATUS_TEXT),
        )
    raise NormalizeError(
        f"'status' should be a string or an object, got {type(raw_status).__name__}"
    )


def _map_status(provider_status: ProviderStatus) -> Status:
    for value in (provider_status.name, provider_status.group, provider_status.code):
        if value is not None and _word(value) in _STATUSES:
            return _STATUSES[_word(value)]
    return Status.UNKNOWN


def _error(report: JsonObject, status: Status, provider_status: ProviderStatus
           ) -> ErrorInfo | None:
    """The error of a failed report, or one given with a status we cannot map; else None."""
    code = _text(report, _ERROR_CODE)
    description = _text(report, _ERROR_TEXT)
    permanent = False
    raw = _first(report, _ERROR)
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    if isinstance(raw, dict):
        fields = loose_keys(raw)
        code = code or text_field(fields, "code", "errorcode", "id")
        description = description or text_field(fields, "message", "description", "text",
                                                "reason", "name")
        permanent = fields.get("permanent") is True
    elif isinstance(raw, str):
        description = description or raw
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        code = code or number_text(raw, "error")
    if code in ("0", "000") and description is None:
        code = None  # "error 0" is how many gateways say "no error"
    if status in _FAILURES:
        return ErrorInfo.build(code=code,
                               description=description or provider_status.description,
                               permanent=permanent)
    if status is Status.UNKNOWN and (code or description):
        return ErrorInfo.build(code=code, description=description, permanent=permanent)
    return None


# --- inbound messages ------------------------------------------------------------------------


def _inbound(request: WebhookRequest, report: JsonObject) -> MessageEvent:
    sender = _address(report, _INBOUND_FROM)
    if sender is None:
        raise NormalizeError(
            f"inbound message has no sender (looked for {_INBOUND_FROM}); "
            f"got keys {key_list(report)}"
        )
    content = _content(report)
    if not _has_content(content):
        raise NormalizeError(
            f"inbound message has no content (looked for {_TEXT}, {_IMAGE_URL}, {_MEDIA_LISTS})"
        )
    media = _media(content)
    text = _text(content, _TEXT)
    caption = text_field(content, "caption")
    if caption is not None and caption != text and _first(content, _IMAGE_URL) is None:
        # An MMS whose image came without a URL: no media item (v1 needs one), but the words
        # sent with it are kept after the text, as add_file keeps them for other providers.
        text = caption if text is None else f"{text}\n{caption}"
    return inbound_event(
        request,
        channel=_channel(report, has_media=bool(media)),
        message_id=_text(report, _MESSAGE_ID),
        sender=sender,
        recipient=_address(report, _INBOUND_TO),
        text=text,
        media=media,
        in_reply_to=_text(report, _IN_REPLY_TO),
        correlation_id=_text(report, _CLIENT_REF),
        segments=int_field(report, *_SEGMENTS.keys),
        price=_price(report),
        occurred_at=parse_time(_first(report, _INBOUND_TIME)),
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
    url = _first(content, _IMAGE_URL)
    if isinstance(url, str):
        media.append(Media.build(url=url, caption=text_field(content, "caption")))
    elif url is not None:
        raise NormalizeError(f"'imageUrl' should be a URL string, got {type(url).__name__}")
    for key in _MEDIA_LISTS.keys:
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


# --- small field helpers ---------------------------------------------------------------------


def _first(report: JsonObject, names: _Names) -> Any:
    return first(report, *names.keys)


def _text(report: JsonObject, names: _Names) -> str | None:
    return text_field(report, *names.keys)


def _word(value: str) -> str:
    return _NOT_WORD.sub("_", value.strip().lower()).strip("_")


def _address(report: JsonObject, names: _Names) -> str | None:
    """A phone number or id, also when given as an object such as {"number": ...}."""
    value = _first(report, names)
    if isinstance(value, dict):
        return text_field(loose_keys(value), "number", "phonenumber", "phone", "msisdn",
                          "address", "id")
    return _text(report, names)


def _channel(report: JsonObject, *, has_media: bool) -> str:
    """Ubiqio sends SMS or MMS: with no `channel`, a message with media is MMS, else SMS."""
    label = report.get("channel")
    if isinstance(label, str) and label.strip():
        return channel(label)
    for key in ("type", "messagetype"):
        value = report.get(key)
        if isinstance(value, str) and value.strip().lower() in ("sms", "mms"):
            return value.strip().lower()
    return "mms" if has_media else "sms"


def _price(report: JsonObject) -> Price | None:
    value = _first(report, _PRICE)
    if isinstance(value, dict):
        fields = loose_keys(value)
        return price(first(fields, "amount", "value", "price", "pricepermessage"),
                     first(fields, "currency"))
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return price(value, first(report, "currency", "pricecurrency"))
    return None
