"""Infobip delivery and seen reports, and the status and error objects in them.

A private part of the infobip provider module, which tells the report kinds apart. The
status and error readers are public there too: infobip_omnichat maps the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping

from normalizers._infobip_fields import (
    flag,
    id_code,
    id_number,
    optional_object,
    report_channel,
    report_price,
)
from normalizers.base import JsonObject, NormalizeError, WebhookRequest
from normalizers.event_builders import status_event
from normalizers.fields import first, int_field, text_field
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, MessageEvent, ProviderStatus, Status

# Status names whose meaning is narrower than their group's (see docs/providers/infobip.md).
STATUS_BY_NAME: Mapping[str, Status] = {
    "MESSAGE_ACCEPTED": Status.ACCEPTED,
    "PENDING_ACCEPTED": Status.ACCEPTED,  # accepted, not yet handed to the operator
    "PENDING_ENROUTE": Status.SENT,
    "PENDING_WAITING_DELIVERY": Status.SENT,  # sent, waiting for the operator's DLR
    "PENDING_TIME_VIOLATION": Status.SCHEDULED,  # held until the allowed time window opens
    "DELIVERED_TO_OPERATOR": Status.SENT,  # intermediate: the handset has not confirmed
    "DELIVERED_TO_HANDSET": Status.DELIVERED,
}

_STATUS_BY_GROUP_NAME = {
    "ACCEPTED": Status.ACCEPTED,
    # Unknown PENDING_* names: Infobip has the message; we do not claim it left.
    "PENDING": Status.ACCEPTED,
    "UNDELIVERABLE": Status.UNDELIVERED,
    "DELIVERED": Status.DELIVERED,
    "EXPIRED": Status.EXPIRED,
    "REJECTED": Status.REJECTED,
}

_STATUS_BY_GROUP_ID = {
    0: Status.ACCEPTED,
    1: Status.ACCEPTED,
    2: Status.UNDELIVERED,
    3: Status.DELIVERED,
    4: Status.EXPIRED,
    5: Status.REJECTED,
}

_STATUS_BY_PREFIX = (
    ("UNDELIVERABLE_", Status.UNDELIVERED),
    ("EXPIRED_", Status.EXPIRED),
    ("REJECTED_", Status.REJECTED),
    ("DELIVERED_", Status.DELIVERED),
    ("PENDING_", Status.ACCEPTED),
)

_DELIVERED_TO_OPERATOR_ID = 2


def delivery_report(
    request: WebhookRequest, report: JsonObject, *, default_channel: str | None
) -> MessageEvent:
    status_obj = optional_object(report, "status")
    if status_obj is None:
        raise NormalizeError("delivery report has no 'status' object")
    return status_event(
        request,
        channel=report_channel(report, default_channel),
        status=map_status(status_obj),
        message_id=text_field(report, "messageId"),
        correlation_id=text_field(report, "callbackData"),
        sender=text_field(report, "sender", "from"),
        recipient=text_field(report, "destination", "to"),
        error=_error(report),
        provider_status=provider_status(status_obj),
        segments=int_field(report, "messageCount", "smsCount"),
        price=report_price(report),
        occurred_at=parse_time(first(report, "doneAt", "sentAt")),
    )


def seen_report(request: WebhookRequest, report: JsonObject, label: str | None, *,
                addressed: bool = True) -> MessageEvent:
    """A seen report. A per-channel API's (WhatsApp's, Viber's, Messenger's, RCS's: `{messageId,
    from, to, sentAt, seenAt, ...}`, no `event`, no channel) is not `addressed`: its channel
    is the URL's label, else `unknown` (nothing in the report says it), and its `from` and `to`
    are not read: Infobip's descriptions and samples disagree on which of them is the contact
    (docs/providers/infobip.md), and a swapped pair would file the report under our own
    number."""
    return status_event(
        request,
        channel=report_channel(report, label),
        status=Status.SEEN,
        message_id=text_field(report, "messageId"),
        correlation_id=text_field(report, "callbackData"),
        sender=text_field(report, "sender", "from") if addressed else None,
        recipient=text_field(report, "destination", "to") if addressed else None,
        occurred_at=parse_time(first(report, "seenAt")),
    )


def map_status(status_obj: JsonObject, by_name: Mapping[str, Status] = STATUS_BY_NAME
               ) -> Status:
    """An Infobip status object's status: specific names (`by_name`) first, then the group
    (name or id), then the name's prefix. infobip_omnichat maps the same objects with it."""
    name = (text_field(status_obj, "name") or "").upper()
    if name in by_name:
        return by_name[name]
    if "SCHEDULED" in name:
        return Status.SCHEDULED
    group = _group_status(status_obj)
    if (group is Status.DELIVERED and not name
            and id_number(status_obj.get("id")) == _DELIVERED_TO_OPERATOR_ID):
        return Status.SENT
    if group is not None:
        return group
    for prefix, status in _STATUS_BY_PREFIX:
        if name.startswith(prefix):
            return status
    return Status.UNKNOWN


def _group_status(status_obj: JsonObject) -> Status | None:
    group_name = text_field(status_obj, "groupName")
    if group_name is not None and group_name.upper() in _STATUS_BY_GROUP_NAME:
        return _STATUS_BY_GROUP_NAME[group_name.upper()]
    group_id = id_number(status_obj.get("groupId"))
    return _STATUS_BY_GROUP_ID.get(group_id) if group_id is not None else None


def provider_status(status_obj: JsonObject) -> ProviderStatus:
    """An Infobip status object, kept as the event's `provider_status`."""
    group = text_field(status_obj, "groupName")
    if group is None:
        group = text_field(status_obj, "groupId")
    return ProviderStatus.build(
        code=id_code(status_obj),
        name=text_field(status_obj, "name"),
        group=group,
        description=text_field(status_obj, "description"),
    )


def _error(report: JsonObject) -> ErrorInfo | None:
    """The report's error, or None when Infobip says there is none (id 0, NO_ERROR)."""
    error_obj = optional_object(report, "error")
    if not error_obj:
        return None
    error = error_info(error_obj)
    if error is None or (error.code is None and error.description is None):
        return None
    return error


def error_info(error_obj: JsonObject) -> ErrorInfo | None:
    """An Infobip error object as ErrorInfo; None when it says there is no error (id 0,
    NO_ERROR, or no id and group 0). infobip_omnichat reads the same objects with it."""
    error_id = id_number(error_obj.get("id"))
    name = text_field(error_obj, "name")
    if error_id == 0 or (name or "").upper() == "NO_ERROR":
        return None
    if error_id is None and id_number(error_obj.get("groupId")) == 0:
        return None
    return ErrorInfo.build(code=id_code(error_obj),
                           description=text_field(error_obj, "description") or name,
                           permanent=flag(error_obj.get("permanent")))
