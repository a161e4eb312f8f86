"""Bird Channels API webhooks (format C in normalizers.bird):
`{"service", "event": "<platform>.<kind>", "payload"}`.

A private part of the bird provider module, which tells the formats apart and calls `events`.
"""

from __future__ import annotations

import re

from normalizers._bird_legacy import OPTED_OUT, SMS_PERMANENT_CODES
from normalizers.base import JsonObject, NormalizeError, WebhookRequest, shown
from normalizers.channels import channel
from normalizers.event_builders import add_file, inbound_event, status_event
from normalizers.fields import (
    as_list,
    first,
    geo_uri,
    iter_objects,
    object_field,
    place_caption,
    subject_and_text,
    text_field,
)
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, Media, MessageEvent, ProviderStatus, Status


def is_envelope(data: JsonObject) -> bool:
    """A Channels API webhook: an event name and its payload."""
    return "event" in data and "payload" in data


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


def events(request: WebhookRequest, envelope: JsonObject) -> list[MessageEvent]:
    event = envelope.get("event")
    if not isinstance(event, str):
        raise NormalizeError("Bird Channels webhook 'event' should be a string")
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        raise NormalizeError(f"Bird Channels {shown(event)} webhook 'payload' should be an object")
    match = _CHANNELS_EVENT.match(event)
    if match is None:
        if event.startswith(("channel.", "conversation.")):
            # channel.*: configuration. conversation.* (the Conversations service, in this
            # envelope): a conversation's life; its messages come as <platform>.* events.
            return []
        raise NormalizeError(
            f"unrecognised Bird Channels event {shown(event)}; expected <platform>.inbound, "
            "<platform>.outbound, <platform>.interaction, channel.* or conversation.*"
        )
    platform, kind = match.groups()
    if kind == "inbound":
        return [_channels_inbound(request, channel(platform), payload)]
    if kind == "outbound":
        return [_channels_status(request, channel(platform), payload)]
    return _channels_interaction(request, channel(platform), payload)


def _channels_inbound(request: WebhookRequest, chan: str, payload: JsonObject) -> MessageEvent:
    text, media, postback = _channels_body(object_field(payload, "body"))
    return inbound_event(
        request,
        # An SMS with media is an MMS, as the legacy API's inbound SMS with media is.
        channel="mms" if chan == "sms" and media else chan,
        message_id=text_field(payload, "id"),
        sender=_sender(payload),
        recipient=_party(object_field(payload, "receiver")),
        text=text,
        media=media,
        postback=postback,
        in_reply_to=text_field(object_field(payload, "replyTo"), "id"),
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
        sender=_party(object_field(payload, "sender")),
        recipient=_party(object_field(payload, "receiver")),
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
    # Named by its messageId or its messageReference, as an outbound event is by its id or
    # reference; status_event refuses one with neither.
    return [
        status_event(
            request,
            channel=chan,
            status=Status.SEEN,
            message_id=text_field(payload, "messageId"),
            correlation_id=text_field(payload, "messageReference"),
            sender=_party(object_field(payload, "sender")),
            recipient=_party(object_field(payload, "receiver")),
            provider_status=ProviderStatus.build(name=kind, group="interaction"),
            occurred_at=parse_time(first(payload, "createdAt")),
        )
    ]


def _channels_error(status: str, payload: JsonObject) -> ErrorInfo | None:
    failure = object_field(payload, "failure")
    if not failure and status not in _CHANNELS_FAILURES:
        return None
    source = object_field(failure, "source")
    source_name = text_field(source, "name")
    source_code = text_field(source, "code")
    bird_code = text_field(failure, "code")
    description = text_field(failure, "description") or text_field(payload, "reason")
    sms_source = bool(source_name and source_name.startswith("sms"))
    opted_out = sms_source and source_code == OPTED_OUT
    # Bird's own code (15xxx) comes with every failure; an opt-out must still read as 103,
    # the code the legacy API uses and the bots act on.
    code = OPTED_OUT if opted_out else bird_code or source_code
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
        or (sms_source and source_code in SMS_PERMANENT_CODES)
    )
    return ErrorInfo.build(code=code, description=description, permanent=permanent)


# Identifier keys of 2026 WhatsApp identities that are not phone numbers.
_WHATSAPP_IDENTITY_KEYS = frozenset({"whatsappbsuid", "whatsappusername"})


def _party(party: JsonObject) -> str | None:
    """The address of a sender/receiver: contact, first of contacts[], or our connector. A
    contact a send named by its id alone may carry no identifier, only its platformAddress
    (the address Bird sent to, in the Channels API message schema)."""
    entity = _entity(party)
    return _identity(entity)[0] or text_field(entity, "platformAddress")


def _entity(party: JsonObject) -> JsonObject:
    """The contact, the first of contacts[], or our connector."""
    entity = object_field(party, "contact")
    if not entity:
        contacts = list(iter_objects(party.get("contacts"), "contacts"))
        entity = contacts[0] if contacts else object_field(party, "connector")
    return entity


def _identity(entity: JsonObject) -> tuple[str | None, str | None]:
    """The address of a contact or connector and its identifier key: its identifierValue,
    else its phone number among identifiers[], else its first identifier."""
    value = text_field(entity, "identifierValue")
    if value is not None:
        return value, text_field(entity, "identifierKey")
    found: tuple[str | None, str | None] = (None, None)
    for identifier in iter_objects(entity.get("identifiers"), "identifiers"):
        value = text_field(identifier, "identifierValue", "value")
        key = text_field(identifier, "identifierKey", "key")
        if value is not None and key == "phonenumber":
            return value, key
        if value is not None and found[0] is None:
            found = (value, key)
    return found


def _sender(payload: JsonObject) -> str | None:
    """The end user of an inbound message. A WhatsApp contact may carry only its BSUID or
    username; its phone number, when Bird knows it, is then in meta.extraInformation, and
    that is the address the contact's other events and opt-outs use."""
    value, key = _identity(_entity(object_field(payload, "sender")))
    if value is not None and key not in _WHATSAPP_IDENTITY_KEYS:
        return value
    extra = object_field(object_field(payload, "meta"), "extraInformation")
    return (text_field(extra, "phoneNumber") or value
            or text_field(extra, "whatsappbsuid", "whatsappusername"))


# The body types the Channels API documents (its `BodyTypes`); each names a part that is an
# object, so another value there is malformed. A type outside them is Bird's to shape: a WhatsApp
# contact card may come as `{"type": "contacts", "contacts": [...]}`, an array.
_BODY_TYPES = frozenset({
    "text", "html", "image", "file", "gif", "location", "carousel", "list", "section",
    "authentication", "template", "action",
})


# The parts whose metadata carries an MMS's subject ("specific mms file" in the Body schema).
_MMS_PARTS = ("image", "file")  # a tuple: `kind` may be any JSON value, a list too


def _channels_body(body: JsonObject) -> tuple[str | None, list[Media], str | None]:
    """Text, media and postback of a Channels message body (`{"type": "image", "image":
    {...}}`). A quick-reply tap is a text whose `actions[]` hold the chosen postback; a shared
    location (`location.coordinates`) is a `geo:` media item, as Infobip's is, captioned with
    the place's `location.location.label` and `.address`. An MMS's subject (an image or file
    part's `metadata.subject`) is the text's first line, as for the platform API's sms.received;
    a metadata that is no object, or a subject that is no text, counts as absent. The part of
    an undocumented type is read only when it is an object: otherwise the message has no text,
    rather than refusing a message Bird delivered. A file without a `mediaUrl` has no item;
    its `altText` joins the text (add_file)."""
    kind = body.get("type")
    content = _part(body, kind) if isinstance(kind, str) and kind != "type" else {}
    media: list[Media] = []
    # A `gif` body is one file: its `mediaUrl` is on the part itself, not in a list.
    items = [content] if kind == "gif" else []
    for key in ("images", "files", "attachments"):
        items.extend(iter_objects(content.get(key), key))
    captions: list[str] = []  # alt texts of files without a URL, which have no media item
    for item in items:
        add_file(media, captions, text_field(item, "mediaUrl"),
                 content_type=text_field(item, "contentType"), caption=text_field(item, "altText"))
    location = geo_uri(object_field(content, "coordinates")) if kind == "location" else None
    if location is not None:  # schema v1 has no location field
        media.append(Media.build(
            url=location, caption=place_caption(content.get("location"), "label", "address")))
    postback = None
    for action in as_list(content.get("actions")):  # only read here: other shapes are ignored
        if isinstance(action, dict) and action.get("type") == "postback":
            postback = text_field(object_field(action, "postback"), "payload")
            break
    text = text_field(content, "text")
    if kind in _MMS_PARTS:
        metadata = content.get("metadata")
        subject = metadata.get("subject") if isinstance(metadata, dict) else None
        text = subject_and_text(subject if isinstance(subject, str) else None, text)
    if captions:  # joined to the text, as the platform API's are (docs/events.md, `text`)
        text = "\n".join([text, *captions] if text is not None else captions)
    return text, media, postback


def _part(body: JsonObject, kind: str) -> JsonObject:
    """The part a body's `type` names: an object for a documented type (else a NormalizeError),
    the object or nothing for any other."""
    if kind in _BODY_TYPES:
        return object_field(body, kind)
    part = body.get(kind)
    return part if isinstance(part, dict) else {}
