"""Bird's legacy MessageBird SMS API webhooks (format A in normalizers.bird): flat fields, in
a query string (status reports, GET), a urlencoded form (inbound SMS) or JSON (Flow Builder).

A private part of the bird provider module, which tells the formats apart and calls `events`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from normalizers.base import NormalizeError, WebhookRequest, shown
from normalizers.event_builders import inbound_event, status_event
from normalizers.fields import as_list, first, int_field, text_field
from normalizers.prices import price
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, Media, MessageEvent, Price, ProviderStatus, Status

_SMS_STATUS = {
    "scheduled": Status.SCHEDULED,
    "buffered": Status.SENT,  # with the operator, waiting for the handset: no DLR yet
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "expired": Status.EXPIRED,
    # A negative delivery report from the network: the message left MessageBird but the
    # handset did not get it. `failed` is kept for messages that could not be sent at all.
    "delivery_failed": Status.UNDELIVERED,
}
_SMS_FAILURES = frozenset({"delivery_failed", "expired"})
OPTED_OUT = "103"  # statusErrorCode when the contact sent STOP (courier: errorStopped)
# Extended error codes after which resending cannot succeed: unknown or unidentified
# subscriber (GSM MAP 1 and 5) and an opted-out contact.
SMS_PERMANENT_CODES = frozenset({"1", "5", OPTED_OUT})
_INBOUND_KEYS = (
    "body", "message", "mid", "shortcode", "mediaurls", "createddatetime", "receive_datetime",
)


def form_fields(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Urlencoded fields (of a form body or `WebhookRequest.query_pairs`) with lower-cased
    keys; repeated media URL keys are all kept.

    MessageBird's own spelling varies (`CreatedDatetime`, `mediaURLs`, `mediaUrls`), and a
    repeated key otherwise keeps its last value, as courier does.
    """
    fields: dict[str, Any] = {}
    media: list[str] = []
    for key, value in pairs:
        lowered = key.lower()
        if lowered.startswith("mediaurls"):
            if value:
                media.append(value)
        else:
            fields[lowered] = value
    if media:
        fields["mediaurls"] = media
    return fields


def events(request: WebhookRequest, fields: dict[str, Any]) -> list[MessageEvent]:
    if first(fields, "originator") is not None and any(key in fields for key in _INBOUND_KEYS):
        return [_legacy_inbound(request, fields)]
    if "status" in fields:
        return [_legacy_status(request, fields)]
    raise NormalizeError(
        "not a Bird webhook: expected a MessageBird status report ('status'), an inbound SMS "
        "('originator' with 'body' or 'message'), a Channels API event ('event', 'payload') "
        "or a platform event ('type', 'data')"
    )


def _legacy_status(request: WebhookRequest, fields: dict[str, Any]) -> MessageEvent:
    name = text_field(fields, "status")
    if name is None:
        raise NormalizeError("MessageBird status report has an empty 'status'")
    message_id = text_field(fields, "id")
    reference = text_field(fields, "reference")
    if message_id is None and reference is None:
        raise NormalizeError("MessageBird status report has neither 'id' nor 'reference'")
    reason = text_field(fields, "statusreason")
    return status_event(
        request,
        channel="sms",
        status=_SMS_STATUS.get(name.lower(), Status.UNKNOWN),
        message_id=message_id,
        correlation_id=reference,
        sender=text_field(fields, "originator"),
        recipient=text_field(fields, "recipient"),
        error=_legacy_error(name.lower(), text_field(fields, "statuserrorcode"), reason),
        provider_status=ProviderStatus.build(name=name, description=reason),
        segments=int_field(fields, "messagepartcount"),
        price=_legacy_price(fields),
        occurred_at=parse_time(first(fields, "statusdatetime")),
        per_recipient=True,  # one message id for all of a send's recipients
    )


def _legacy_error(status: str, code: str | None, reason: str | None) -> ErrorInfo | None:
    if code == "0":
        code = None
    if code is None and status not in _SMS_FAILURES:
        return None
    description = reason
    if code == OPTED_OUT:
        description = "contact opted out (sent STOP)" + (f": {reason}" if reason else "")
    return ErrorInfo.build(code=code, description=description,
                           permanent=code in SMS_PERMANENT_CODES)


def _legacy_price(fields: dict[str, Any]) -> Price | None:
    nested = fields.get("price")
    if isinstance(nested, dict):  # the JSON variant nests what the query string brackets
        return price(nested.get("amount"), nested.get("currency"))
    return price(first(fields, "price[amount]"), first(fields, "price[currency]"))


def _legacy_inbound(request: WebhookRequest, fields: dict[str, Any]) -> MessageEvent:
    # Short-code MOs name their fields differently from virtual mobile numbers (courier).
    if first(fields, "shortcode") is not None:
        message_id = text_field(fields, "mid", "id", "message_id")
        recipient = text_field(fields, "shortcode")
        text = text_field(fields, "message", "body")
        occurred = first(fields, "receive_datetime", "createddatetime", "date_utc")
    else:
        message_id = text_field(fields, "id", "mid", "message_id")
        recipient = text_field(fields, "recipient", "receiver")
        text = text_field(fields, "body", "message")
        occurred = first(fields, "createddatetime", "date_utc")
    media = [_media_url(url) for url in as_list(fields.get("mediaurls"))]
    if text is None and not media:
        raise NormalizeError("MessageBird inbound SMS has neither text nor media")
    return inbound_event(
        request,
        channel="mms" if media else "sms",
        message_id=message_id,
        sender=text_field(fields, "originator"),
        recipient=recipient,
        text=text,
        media=media,
        occurred_at=parse_time(occurred),
    )


def _media_url(url: Any) -> Media:
    if not isinstance(url, str) or not url:
        raise NormalizeError(f"media URL should be a non-empty string, got {shown(url)}")
    return Media.build(url=url)
