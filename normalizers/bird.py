"""Bird (formerly MessageBird) webhooks -> message events.

Bird sends three webhook generations that Switchboard accepts, told apart by shape alone
(headers only carry authentication, which the ingest checks):

* A, the legacy MessageBird SMS API: flat fields. Status reports arrive as GET with everything
  in the query string; inbound SMS as a urlencoded form POST; Flow Builder can forward the
  same fields as JSON.
* C, the Bird Channels API: `{"service", "event": "<platform>.<kind>", "payload"}`.
* D, the Bird platform API (Standard Webhooks): `{"type": "sms.delivered", "timestamp", "data"}`.

The legacy Conversations API envelope (`{"type", "message", "conversation"}`) is recognised only
to reject it with a clear reason. See docs/providers/bird.md for the mappings and sources.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from normalizers.base import DEFAULT_ACK, Ack, JsonObject, NormalizeError, WebhookRequest, shown
from normalizers.bodies import form_pairs, is_form, parse_json_object, query_text
from normalizers.channels import channel
from normalizers.event_builders import inbound_event, status_event
from normalizers.fields import as_list, first, int_field, iter_objects, text_field
from normalizers.prices import price
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, Media, MessageEvent, Price, ProviderStatus, Status

NAME = "bird"

# The legacy SMS API expects exactly this answer to an inbound SMS (courier's MessageBird
# handler: "MB expects an 'OK' body"); status reports accept it too.
_LEGACY_ACK = Ack(status_code=200, body=b"OK", content_type="text/plain")


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    """One event per Bird webhook (Bird never batches); the family is told by method and shape."""
    method = request.method.upper()
    if method in ("GET", "HEAD") or not request.body.strip():
        query = request.query.lstrip("?")
        if not query.strip():
            if method in ("GET", "HEAD"):
                return []  # MessageBird checks a status URL with a bare GET before using it
            raise NormalizeError("empty body and no query string; expected a Bird webhook")
        return _legacy(request, _form_fields(query_text(query)))
    if _is_form_body(request):
        return _legacy(request, _form_fields(request.body))
    return _json(request, parse_json_object(request.body))


def acknowledge(request: WebhookRequest) -> Ack:
    """`OK` as text for the legacy SMS API; the newer APIs accept any 2xx."""
    return DEFAULT_ACK if _is_json_envelope(request) else _LEGACY_ACK


def _is_form_body(request: WebhookRequest) -> bool:
    if is_form(request):
        return True
    # Some legacy forwarders omit the content type; a JSON body never starts like a form.
    body = request.body.lstrip()
    if request.media_type == "application/json" or body[:1] in (b"{", b"["):
        return False
    return b"=" in body


def _is_json_envelope(request: WebhookRequest) -> bool:
    if request.method.upper() in ("GET", "HEAD") or request.body.lstrip()[:1] != b"{":
        return False
    try:
        data = parse_json_object(request.body)
    except NormalizeError:
        return False
    return _is_channels(data) or _is_platform(data)


def _json(request: WebhookRequest, data: JsonObject) -> list[MessageEvent]:
    if _is_channels(data):
        return _channels(request, data)
    if _is_platform(data):
        return _platform(request, data)
    if "type" in data and "message" in data:
        raise NormalizeError(
            "legacy MessageBird Conversations API webhooks (message.created/message.updated) "
            "are not supported; subscribe to the Bird Channels API events instead"
        )
    return _legacy(request, {str(key).lower(): value for key, value in data.items()})


def _is_channels(data: JsonObject) -> bool:
    return "event" in data and "payload" in data


def _is_platform(data: JsonObject) -> bool:
    return "type" in data and "data" in data


def _dict(parent: JsonObject, key: str) -> JsonObject:
    """An optional nested object: {} when absent or null, a typed error when not an object."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NormalizeError(f"field {key!r} should be an object, got {type(value).__name__}")
    return value


# --- A: legacy MessageBird SMS API -------------------------------------------------------------

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
_OPTED_OUT = "103"  # statusErrorCode when the contact sent STOP (courier: errorStopped)
# The error codes our events carry when the contact opted out (the newer platform names it).
OPT_OUT_ERROR_CODES = frozenset({_OPTED_OUT, "recipient_opted_out"})
# Extended error codes after which resending cannot succeed: unknown or unidentified
# subscriber (GSM MAP 1 and 5) and an opted-out contact.
_SMS_PERMANENT_CODES = frozenset({"1", "5", _OPTED_OUT})
_INBOUND_KEYS = (
    "body", "message", "mid", "shortcode", "mediaurls", "createddatetime", "receive_datetime",
)


def _form_fields(text: bytes | str) -> dict[str, Any]:
    """Urlencoded fields with lower-cased keys; repeated media URL keys are all kept.

    MessageBird's own spelling varies (`CreatedDatetime`, `mediaURLs`, `mediaUrls`), and a
    repeated key otherwise keeps its last value, as courier does.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise NormalizeError("form body is not UTF-8") from None
    fields: dict[str, Any] = {}
    media: list[str] = []
    for key, value in form_pairs(text):
        lowered = key.lower()
        if lowered.startswith("mediaurls"):
            if value:
                media.append(value)
        else:
            fields[lowered] = value
    if media:
        fields["mediaurls"] = media
    return fields


def _legacy(request: WebhookRequest, fields: dict[str, Any]) -> list[MessageEvent]:
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
    )


def _legacy_error(status: str, code: str | None, reason: str | None) -> ErrorInfo | None:
    if code == "0":
        code = None
    if code is None and status not in _SMS_FAILURES:
        return None
    description = reason
    if code == _OPTED_OUT:
        description = "contact opted out (sent STOP)" + (f": {reason}" if reason else "")
    return ErrorInfo.build(code=code, description=description,
                           permanent=code in _SMS_PERMANENT_CODES)


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


# --- C: Bird Channels API ----------------------------------------------------------------------

_CHANNELS_EVENT = re.compile(r"^([a-z0-9][a-z0-9_-]*)\.(inbound|outbound|interaction)$")
_CHANNELS_STATUS = {
    "accepted": Status.ACCEPTED,
    "processing": Status.ACCEPTED,  # still inside Bird, not yet handed to the platform
    "sending": Status.ACCEPTED,
    "scheduled": Status.SCHEDULED,
    "sent": Status.SENT,  # handed to the platform (operator, WhatsApp ...), not yet delivered
    "delivered": Status.DELIVERED,
    "read": Status.SEEN,
    "rejected": Status.REJECTED,
    "skipped": Status.REJECTED,  # Bird chose not to send it: never left Bird
    "sending_failed": Status.FAILED,  # Bird could not hand it to the platform
    "delivery_failed": Status.UNDELIVERED,  # the platform had it, the recipient did not get it
    "deleted": Status.DELETED,
}
_CHANNELS_FAILURES = frozenset({"rejected", "skipped", "sending_failed", "delivery_failed"})
# failure.code groups 11xxx (validation) and 14xxx (customer error) cannot succeed on retry.
_CHANNELS_PERMANENT_GROUPS = ("11", "14")


def _channels(request: WebhookRequest, envelope: JsonObject) -> list[MessageEvent]:
    event = envelope.get("event")
    if not isinstance(event, str):
        raise NormalizeError("Bird Channels webhook 'event' should be a string")
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        raise NormalizeError(f"Bird Channels {shown(event)} webhook 'payload' should be an object")
    match = _CHANNELS_EVENT.match(event)
    if match is None:
        if event.startswith("channel."):
            return []  # channel.created / channel.updated: configuration, not messages
        raise NormalizeError(
            f"unrecognised Bird Channels event {shown(event)}; expected <platform>.inbound, "
            "<platform>.outbound, <platform>.interaction or channel.*"
        )
    platform, kind = match.groups()
    if kind == "inbound":
        return [_channels_inbound(request, channel(platform), payload)]
    if kind == "outbound":
        return [_channels_status(request, channel(platform), payload)]
    return _channels_interaction(request, channel(platform), payload)


def _channels_inbound(request: WebhookRequest, chan: str, payload: JsonObject) -> MessageEvent:
    text, media = _channels_body(_dict(payload, "body"))
    return inbound_event(
        request,
        channel=chan,
        message_id=text_field(payload, "id"),
        sender=_party(_dict(payload, "sender")) or _extra_identity(payload),
        recipient=_party(_dict(payload, "receiver")),
        text=text,
        media=media,
        in_reply_to=text_field(_dict(payload, "replyTo"), "id"),
        occurred_at=parse_time(first(payload, "createdAt", "lastStatusAt")),
    )


def _channels_status(request: WebhookRequest, chan: str, payload: JsonObject) -> MessageEvent:
    name = text_field(payload, "status")
    if name is None:
        raise NormalizeError("Bird Channels outbound event has no 'status'")
    message_id = text_field(payload, "id")
    reference = text_field(payload, "reference")
    if message_id is None and reference is None:
        raise NormalizeError("Bird Channels outbound event has neither 'id' nor 'reference'")
    return status_event(
        request,
        channel=chan,
        status=_CHANNELS_STATUS.get(name.lower(), Status.UNKNOWN),
        message_id=message_id,
        correlation_id=reference,
        sender=_party(_dict(payload, "sender")),
        recipient=_party(_dict(payload, "receiver")),
        error=_channels_error(name.lower(), payload),
        provider_status=ProviderStatus.build(name=name,
                                             description=text_field(payload, "details")),
        occurred_at=parse_time(first(payload, "lastStatusAt", "updatedAt", "createdAt")),
    )


def _channels_interaction(
    request: WebhookRequest, chan: str, payload: JsonObject
) -> list[MessageEvent]:
    kind = text_field(payload, "type")
    if kind is None:
        raise NormalizeError("Bird Channels interaction has no 'type'")
    if kind.lower() != "read":
        return []  # clicked, opened, reactions ...: engagement, not message status
    message_id = text_field(payload, "messageId")
    if message_id is None:
        raise NormalizeError("Bird Channels read interaction has no 'messageId'")
    return [
        status_event(
            request,
            channel=chan,
            status=Status.SEEN,
            message_id=message_id,
            correlation_id=text_field(payload, "messageReference"),
            sender=_party(_dict(payload, "sender")),
            recipient=_party(_dict(payload, "receiver")),
            provider_status=ProviderStatus.build(name=kind, group="interaction"),
            occurred_at=parse_time(first(payload, "createdAt")),
        )
    ]


def _channels_error(status: str, payload: JsonObject) -> ErrorInfo | None:
    failure = _dict(payload, "failure")
    if not failure and status not in _CHANNELS_FAILURES:
        return None
    source = _dict(failure, "source")
    source_name = text_field(source, "name")
    source_code = text_field(source, "code")
    bird_code = text_field(failure, "code")
    description = text_field(failure, "description") or text_field(payload, "reason")
    sms_source = bool(source_name and source_name.startswith("sms"))
    opted_out = sms_source and source_code == _OPTED_OUT
    # Bird's own code (15xxx) comes with every failure; an opt-out must still read as 103,
    # the code the legacy API uses and the bots act on.
    code = _OPTED_OUT if opted_out else bird_code or source_code
    if opted_out:
        description = "contact opted out (sent STOP)" + (f": {description}" if description else "")
    if source_name or source_code:
        detail = f"source {source_name or '?'} code {source_code or '?'}"
        if opted_out and bird_code:
            detail += f", Bird code {bird_code}"
        description = f"{description} ({detail})" if description else detail
    permanent = (
        status == "rejected"
        or (code is not None and code.startswith(_CHANNELS_PERMANENT_GROUPS))
        or (sms_source and source_code in _SMS_PERMANENT_CODES)
    )
    return ErrorInfo.build(code=code, description=description, permanent=permanent)


def _party(party: JsonObject) -> str | None:
    """The address of a sender/receiver: contact, first of contacts[], or our connector."""
    entity = _dict(party, "contact")
    if not entity:
        contacts = list(iter_objects(party.get("contacts"), "contacts"))
        entity = contacts[0] if contacts else _dict(party, "connector")
    value = text_field(entity, "identifierValue")
    if value is None:
        for identifier in iter_objects(entity.get("identifiers"), "identifiers"):
            value = text_field(identifier, "identifierValue", "value")
            if value is not None:
                break
    return value


def _extra_identity(payload: JsonObject) -> str | None:
    """WhatsApp contacts may come with no phone number on the contact, only in meta."""
    extra = _dict(_dict(payload, "meta"), "extraInformation")
    return text_field(extra, "phoneNumber", "whatsappbsuid", "whatsappusername")


def _channels_body(body: JsonObject) -> tuple[str | None, list[Media]]:
    """Text and media of a Channels message body (`{"type": "image", "image": {...}}`)."""
    kind = body.get("type")
    content = _dict(body, kind) if isinstance(kind, str) and kind != "type" else {}
    media: list[Media] = []
    for key in ("images", "files", "attachments"):
        for item in iter_objects(content.get(key), key):
            url = text_field(item, "mediaUrl")
            if url is not None:
                media.append(
                    Media.build(
                        url=url,
                        content_type=text_field(item, "contentType"),
                        caption=text_field(item, "altText"),
                    )
                )
    return text_field(content, "text"), media


# --- D: Bird platform API (Standard Webhooks) --------------------------------------------------

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
_PLATFORM_PERMANENT_CODES = frozenset({
    "invalid_destination", "landline_unreachable", "blocked_by_recipient", "recipient_opted_out",
    "sender_unregistered", "content_rejected",
})
# Events without a message status or message of a channel Switchboard carries.
_PLATFORM_IGNORED = (
    "amb.", "domain.", "email.", "email_mailbox.", "email_suppression.", "preference.",
    "sms_suppression.", "verify.", "voice_call.", "whatsapp.group.", "whatsapp_suppression.",
)
_PLATFORM_IGNORED_TYPES = frozenset({"whatsapp.reacted"})


def _platform(request: WebhookRequest, envelope: JsonObject) -> list[MessageEvent]:
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
    message_id = text_field(data, id_key)
    if message_id is None:
        raise NormalizeError(f"Bird platform {shown(kind)} event has no {id_key!r}")
    occurred_at = parse_time(envelope.get("timestamp"))
    if action == "received":
        return [_platform_inbound(request, product, message_id, data, occurred_at)]
    if text_field(data, "direction") == "inbound":
        return []  # a status of a message the contact sent us, not one of ours
    cost = _dict(data, "cost")
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
            segments=int_field(_dict(data, "segments"), "count"),
            price=price(cost.get("amount"), cost.get("currency_code")),
            occurred_at=occurred_at,
        )
    ]


def _platform_inbound(
    request: WebhookRequest,
    product: str,
    message_id: str,
    data: JsonObject,
    occurred_at: datetime | None,
) -> MessageEvent:
    content = data.get("text")
    if isinstance(content, dict):  # WhatsApp text is an object; its field name is unconfirmed
        text = text_field(content, "body", "text")
    else:
        text = text_field(data, "text")
    return inbound_event(
        request,
        channel=channel(product),
        message_id=message_id,
        sender=_platform_address(data.get("from")),
        recipient=_platform_address(data.get("to")),
        text=text,
        in_reply_to=text_field(data, "in_reply_to_message_id"),
        segments=int_field(_dict(data, "segments"), "count"),
        occurred_at=occurred_at,
    )


def _platform_address(value: Any) -> str | None:
    """SMS addresses are strings; WhatsApp ones are `{phone_number, bsuid}` objects."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return text_field(value, "phone_number", "bsuid", "username")
    raise NormalizeError(f"address should be a string or an object, got {type(value).__name__}")


def _platform_error(action: str, data: JsonObject) -> ErrorInfo | None:
    error = _dict(data, "error")
    if not error and action not in _PLATFORM_FAILURES:
        return None
    code = text_field(error, "code")
    description = text_field(error, "description")
    carrier_code = text_field(error, "carrier_error_code")
    if carrier_code is not None:
        detail = f"carrier code {carrier_code}"
        description = f"{description} ({detail})" if description else detail
    permanent = action == "failed" or code in _PLATFORM_PERMANENT_CODES
    return ErrorInfo.build(code=code, description=description, permanent=permanent)


def _metadata_reference(data: JsonObject) -> str | None:
    """The platform API echoes send metadata, not a reference; Switchboard reads its
    `reference` (or `correlation_id`) key as the correlation id."""
    return text_field(_dict(data, "metadata"), "reference", "correlation_id")
