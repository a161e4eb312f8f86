"""Bird platform API webhooks, Standard Webhooks (format D in normalizers.bird):
`{"type": "sms.delivered", "timestamp", "data"}`.

A private part of the bird provider module, which tells the formats apart and calls `events`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from normalizers.base import JsonObject, NormalizeError, WebhookRequest, shown
from normalizers.channels import channel
from normalizers.event_builders import add_file, inbound_event, status_event
from normalizers.fields import (
    geo_uri,
    int_field,
    object_field,
    place_caption,
    subject_and_text,
    text_field,
)
from normalizers.prices import price
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, Media, MessageEvent, ProviderStatus, Status


def is_envelope(data: JsonObject) -> bool:
    """A platform API webhook: an event type and its data."""
    return "type" in data and "data" in data


_PLATFORM_STATUS = {
    "accepted": Status.ACCEPTED,
    "sent": Status.SENT,  # handed to the carrier / Meta
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,  # carrier reported a non-permanent failure
    "failed": Status.FAILED,  # failed permanently
    "expired": Status.EXPIRED,
    "rejected": Status.REJECTED,  # refused by Bird before the carrier
    "read": Status.SEEN,
}
_PLATFORM_MESSAGE_ID = {"sms": "sms_id", "whatsapp": "whatsapp_id"}
_PLATFORM_FAILURES = frozenset({"undelivered", "failed", "expired", "rejected"})
# Codes after which the same send is refused again. WhatsApp's `recipient_suppressed` (on the
# workspace suppression list) is as final as SMS's `recipient_opted_out` until someone lifts
# it, but is no opt-out (bird.OPT_OUT_ERROR_CODES): a suppression may be made by hand. SMS's
# `blocked_by_fraud_protection` (suspected SMS pumping) is not here: nothing says a later send
# is blocked too, as `blocked_by_carrier` is not.
_PLATFORM_PERMANENT_CODES = frozenset({
    "invalid_destination", "landline_unreachable", "blocked_by_recipient", "recipient_opted_out",
    "sender_unregistered", "content_rejected", "recipient_suppressed",
})
# Events without a message status or message of a channel Switchboard carries.
_PLATFORM_IGNORED = (
    "amb.", "domain.", "email.", "email_mailbox.", "email_suppression.", "preference.",
    "sms_suppression.", "sms.tfn_verification.", "verify.", "voice_call.", "whatsapp.group.",
    "whatsapp_suppression.",
)
_PLATFORM_IGNORED_TYPES = frozenset({"whatsapp.reacted"})
# The media parts of a received WhatsApp message (EventWhatsAppReceivedData); one per message.
_WHATSAPP_MEDIA_KEYS = ("image", "video", "audio", "sticker", "document")


def events(request: WebhookRequest, envelope: JsonObject) -> list[MessageEvent]:
    kind = envelope.get("type")
    if not isinstance(kind, str):
        raise NormalizeError("Bird platform webhook 'type' should be a string")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise NormalizeError(f"Bird platform {shown(kind)} webhook 'data' should be an object")
    if kind in _PLATFORM_IGNORED_TYPES or kind.startswith(_PLATFORM_IGNORED):
        return []
    product, _, action = kind.partition(".")
    id_key = _PLATFORM_MESSAGE_ID.get(product)
    if id_key is None or not action:
        raise NormalizeError(f"unrecognised Bird platform event type {shown(kind)}")
    # Without its id an event is still kept as every provider's is (docs/events.md, "Missing
    # senders and ids"): a message by its content, a status by its metadata's reference.
    message_id = text_field(data, id_key)
    occurred_at = parse_time(envelope.get("timestamp"))
    if action == "received":
        return [_platform_inbound(request, product, message_id, data, occurred_at)]
    if text_field(data, "direction") == "inbound":
        return []  # a status of a message the contact sent us, not one of ours
    cost = object_field(data, "cost")
    return [
        status_event(
            request,
            channel=channel(product),
            status=_PLATFORM_STATUS.get(action, Status.UNKNOWN),
            message_id=message_id,
            correlation_id=_metadata_reference(data),
            sender=_platform_address(data.get("from")),
            recipient=_platform_address(data.get("recipient")) or _platform_address(data.get("to")),
            error=_platform_error(action, data),
            provider_status=ProviderStatus.build(name=kind),
            segments=int_field(object_field(data, "segments"), "count"),
            price=price(cost.get("amount"), cost.get("currency_code")),
            occurred_at=occurred_at,
        )
    ]


def _platform_inbound(
    request: WebhookRequest,
    product: str,
    message_id: str | None,
    data: JsonObject,
    occurred_at: datetime | None,
) -> MessageEvent:
    content = data.get("text")
    if isinstance(content, dict):  # WhatsApp text is an object, WhatsAppText {body}
        text = text_field(content, "body", "text")
    else:
        text = subject_and_text(text_field(data, "subject"), text_field(data, "text"))
    media: list[Media] = []
    postback = None
    if product == "whatsapp":
        captions: list[str] = []
        media = _whatsapp_media(data, captions)
        choice = _whatsapp_choice(data)
        postback = text_field(choice, "slug")
        text = text or text_field(choice, "text")
        if captions:  # a file without a URL: its caption joins the text (docs/events.md)
            text = "\n".join([text, *captions] if text is not None else captions)
    return inbound_event(
        request,
        channel=channel(product),
        message_id=message_id,
        sender=_platform_address(data.get("from")),
        recipient=_platform_address(data.get("to")),
        text=text,
        media=media,
        postback=postback,
        in_reply_to=text_field(data, "in_reply_to_message_id"),
        segments=int_field(object_field(data, "segments"), "count"),
        occurred_at=occurred_at,
    )


def _whatsapp_media(data: JsonObject, captions: list[str]) -> list[Media]:
    """The file or location a contact sent. A file's `url` is Bird's, fetched with the API key;
    it is absent when Bird could not get the file from WhatsApp, and then there is no item and
    its caption goes to `captions`, to be the text (event_builders.add_file). A
    location is a `geo:` item captioned with the place, as for the Channels API; without
    coordinates its `url` (a link to the place) stands in."""
    media: list[Media] = []
    for key in _WHATSAPP_MEDIA_KEYS:
        part = object_field(data, key)
        add_file(media, captions, text_field(part, "url"),
                 content_type=text_field(part, "mime_type"), caption=text_field(part, "caption"))
    location = object_field(data, "location")
    url = geo_uri(location) or text_field(location, "url")
    if url is not None:
        media.append(Media.build(url=url, caption=place_caption(location, "name", "address")))
    return media


def _whatsapp_choice(data: JsonObject) -> JsonObject:
    """The button or list row a contact tapped, `{slug, text}`: the slug is our postback, the
    label the text they saw. {} when the message answers no interactive message."""
    reply = object_field(data, "interactive_reply")
    return object_field(reply, "button") or object_field(reply, "list")


def _platform_address(value: Any) -> str | None:
    """SMS addresses are strings; WhatsApp ones are `{phone_number, bsuid}` objects."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return text_field(value, "phone_number", "bsuid", "username")
    raise NormalizeError(f"address should be a string or an object, got {type(value).__name__}")


def _platform_error(action: str, data: JsonObject) -> ErrorInfo | None:
    error = object_field(data, "error")
    if not error and action not in _PLATFORM_FAILURES:
        return None
    code = text_field(error, "code")
    description = text_field(error, "description")
    # The network's own code: SMS's carrier's, WhatsApp's Cloud API's (`meta_error_code`).
    carrier_code = text_field(error, "carrier_error_code")
    meta_code = text_field(error, "meta_error_code")
    detail = (f"carrier code {carrier_code}" if carrier_code is not None
              else f"WhatsApp code {meta_code}" if meta_code is not None else None)
    if detail is not None:
        description = f"{description} ({detail})" if description else detail
    permanent = action == "failed" or code in _PLATFORM_PERMANENT_CODES
    return ErrorInfo.build(code=code, description=description, permanent=permanent)


def _metadata_reference(data: JsonObject) -> str | None:
    """The platform API echoes send metadata, not a reference; Switchboard reads its
    `reference` (or `correlation_id`) key as the correlation id."""
    return text_field(object_field(data, "metadata"), "reference", "correlation_id")
