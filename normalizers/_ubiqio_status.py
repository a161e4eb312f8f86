"""Ubiqio status reports: the status words and what they map to (a status named by the event
itself, `message.delivered`, included), the provider status and the error of a report.

A private part of the ubiqio provider module, which tells the report kinds apart and calls
`status_report`.
"""

from __future__ import annotations

from typing import Any

from normalizers._ubiqio_fields import (
    CLIENT_REF,
    ERROR,
    ERROR_CODE,
    ERROR_TEXT,
    KIND_KEYS,
    MESSAGE_ID,
    NOT_WORD,
    REPORT_FROM,
    REPORT_TO,
    SEGMENTS,
    STATUS,
    STATUS_CODE,
    STATUS_TEXT,
    STATUS_TIME,
    address,
    first_of,
    report_channel,
    report_price,
    status_word,
    text_of,
)
from normalizers.base import JsonObject, NormalizeError, WebhookRequest, key_list
from normalizers.event_builders import status_event
from normalizers.fields import first, int_field, loose_keys, number_text, text_field
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, MessageEvent, ProviderStatus, Status

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


def status_from_event(report: JsonObject) -> tuple[str, Status] | None:
    """A status named by the event itself (`message.delivered`, `sms_failed`), if any."""
    for key in KIND_KEYS:
        value = report.get(key)
        if isinstance(value, str) and value.strip():
            words = [word for word in NOT_WORD.split(value.lower()) if word]
            if words and words[-1] in _STATUSES:
                return value, _STATUSES[words[-1]]
    return None


def status_report(request: WebhookRequest, report: JsonObject) -> MessageEvent:
    raw_status = first_of(report, STATUS)
    event_status = status_from_event(report)
    if raw_status is None:
        if event_status is None:
            raise NormalizeError(
                f"status report has no status (looked for {STATUS}, or an event name ending "
                f"in a status word such as 'message.delivered'); got keys {key_list(report)}"
            )
        raw_status = event_status[0]
    provider_status = _provider_status(report, raw_status)
    status = _map_status(provider_status)
    if status is Status.UNKNOWN and event_status is not None:
        status = event_status[1]  # e.g. {"event": "message.delivered", "status": "SUCCESS"}
    message_id = text_of(report, MESSAGE_ID)
    correlation_id = text_of(report, CLIENT_REF)
    if message_id is None and correlation_id is None:
        raise NormalizeError(
            f"status report names no message (looked for {MESSAGE_ID}, {CLIENT_REF})"
        )
    return status_event(
        request,
        channel=report_channel(report, has_media=first(report, "imageurl", "mediaurl") is not None),
        status=status,
        message_id=message_id,
        correlation_id=correlation_id,
        sender=address(report, REPORT_FROM),
        recipient=address(report, REPORT_TO),
        error=_error(report, status, provider_status),
        provider_status=provider_status,
        segments=int_field(report, *SEGMENTS.keys),
        price=report_price(report),
        occurred_at=parse_time(first_of(report, STATUS_TIME)),
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
            code=text_of(report, STATUS_CODE),
            name=raw_status if isinstance(raw_status, str) else number_text(raw_status, "status"),
            description=text_of(report, STATUS_TEXT),
        )
    raise NormalizeError(
        f"'status' should be a string or an object, got {type(raw_status).__name__}"
    )


def _map_status(provider_status: ProviderStatus) -> Status:
    for value in (provider_status.name, provider_status.group, provider_status.code):
        if value is not None and status_word(value) in _STATUSES:
            return _STATUSES[status_word(value)]
    return Status.UNKNOWN


def _error(report: JsonObject, status: Status, provider_status: ProviderStatus
           ) -> ErrorInfo | None:
    """The error of a failed report, or one given with a status we cannot map; else None."""
    code = text_of(report, ERROR_CODE)
    description = text_of(report, ERROR_TEXT)
    permanent = False
    raw = first_of(report, ERROR)
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
