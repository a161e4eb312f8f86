"""Legacy MessageBird Conversations API webhooks (format B in normalizers.bird):
`{"type": "message.created", "contact", "conversation", "message"}`.

A private part of the bird provider module, which tells the formats apart and calls `events`.
The sources for each field are in docs/providers/bird.md, "Family B".
"""

from __future__ import annotations

from normalizers.base import JsonObject, NormalizeError, WebhookRequest, shown
from normalizers.channels import channel
from normalizers.event_builders import add_file, inbound_event, status_event
from normalizers.fields import first, geo_uri, object_field, text_field
from normalizers.times import parse_time
from switchboard.addresses import is_phone_channel
from switchboard.events import ErrorInfo, Media, MessageEvent, ProviderStatus, Status

_EVENT_PREFIXES = ("message.", "conversation.")
_MESSAGE_EVENTS = frozenset({"message.created", "message.updated"})


def is_envelope(data: JsonObject) -> bool:
    """A Conversations API webhook: an event type and the message or conversation it is about.
    A legacy SMS API body forwarded as JSON may have a `type` and a `message` too, but that
    `message` is a short code's text, not an object, and its `type` no event name."""
    kind = data.get("type")
    if isinstance(kind, str) and kind.startswith(_EVENT_PREFIXES):
        return "message" in data or "conversation" in data
    return "type" in data and isinstance(data.get("message"), dict)


# The statuses in MessageBird's SDKs (go-rest-api MessageStatus, php-rest-api Message,
# java-rest-api ConversationMessageStatus). Those not here (received, unsupported, unknown and
# the email ones: clicked, opened, spam_complaint, list_unsubscribe, out_of_bounded, delayed)
# are `unknown`: no source says what they mean for a message we sent.
_STATUS = {
    "accepted": Status.ACCEPTED,
    "pending": Status.ACCEPTED,  # still inside MessageBird
    "pending_media": Status.ACCEPTED,  # its media not fetched yet: still inside MessageBird
    "sent": Status.SENT,  # handed to the platform, not yet delivered
    "transmitted": Status.SENT,
    "buffered": Status.SENT,  # as the legacy SMS API's: the operator has it
    "dispatched": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.SEEN,
    "rejected": Status.REJECTED,
    "failed": Status.FAILED,
    "delivery_failed": Status.UNDELIVERED,  # as the legacy SMS API's and the Channels API's
    "bounce": Status.UNDELIVERED,  # an email the recipient's server refused
    "expired": Status.EXPIRED,
    "deleted": Status.DELETED,
}
_FAILURES = frozenset({"rejected", "failed", "delivery_failed", "bounce", "expired"})


def events(request: WebhookRequest, envelope: JsonObject) -> list[MessageEvent]:
    kind = envelope.get("type")
    if not isinstance(kind, str):
        raise NormalizeError("MessageBird Conversations webhook 'type' should be a string")
    if kind.startswith("conversation."):
        return []  # a conversation opened, archived ...: its messages come as message.* events
    if kind not in _MESSAGE_EVENTS:
        raise NormalizeError(
            f"unrecognised MessageBird Conversations event {shown(kind)}; expected "
            "message.created, message.updated or conversation.*")
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise NormalizeError(f"MessageBird Conversations {kind} webhook 'message' should be an "
                             f"object, got {type(message).__name__}")
    contact = object_field(envelope, "contact")
    direction = text_field(message, "direction")
    if direction == "received":
        # message.updated of a received message gives its message.created's event id (same
        # message id and createdDatetime): consumers deduplicate on it, as on any retry.
        return [_inbound(request, message, contact)]
    if direction == "sent":
        return [_status(request, message, contact)]
    raise NormalizeError(f"MessageBird Conversations message 'direction' should be 'received' "
                         f"or 'sent', got {shown(direction)}")


def _inbound(request: WebhookRequest, message: JsonObject, contact: JsonObject) -> MessageEvent:
    chan = channel(text_field(message, "platform"))
    text, media, postback = _content(message)
    return inbound_event(
        request,
        # An SMS with media is an MMS, as for the other Bird families.
        channel="mms" if chan == "sms" and media else chan,
        message_id=text_field(message, "id"),
        sender=_contact_address(message, "from", contact, chan),
        recipient=text_field(message, "to"),
        text=text,
        media=media,
        postback=postback,
        occurred_at=parse_time(first(message, "createdDatetime", "updatedDatetime")),
    )


def _status(request: WebhookRequest, message: JsonObject, contact: JsonObject) -> MessageEvent:
    name = text_field(message, "status")
    if name is None:
        raise NormalizeError("MessageBird Conversations sent message has no 'status'")
    chan = channel(text_field(message, "platform"))
    key = name.lower()
    return status_event(
        request,
        channel=chan,
        status=_STATUS.get(key, Status.UNKNOWN),
        message_id=text_field(message, "id"),
        correlation_id=text_field(message, "trackId"),
        sender=text_field(message, "from"),  # our side: a number, or the channel's id
        recipient=_contact_address(message, "to", contact, chan),
        # No source shows an error object on a Conversations message: the error says only
        # that it failed (docs/events.md, `error`); whether a resend can succeed is unknown.
        error=ErrorInfo.build() if key in _FAILURES else None,
        provider_status=ProviderStatus.build(name=name),
        occurred_at=parse_time(first(message, "updatedDatetime", "createdDatetime")),
    )


def _contact_address(message: JsonObject, key: str, contact: JsonObject,
                     chan: str) -> str | None:
    """The contact's side of a message: its `from` or `to` (a phone number, a WhatsApp BSUID,
    a platform's user id), else, on a phone channel, the contact's `msisdn` (a JSON number in
    MessageBird's contact object). Elsewhere the msisdn is not where the contact is reached: a
    Telegram or Messenger user has the platform's id."""
    value = text_field(message, key)
    if value is None and is_phone_channel(chan):
        value = text_field(contact, "msisdn")
    return value


def _content(message: JsonObject) -> tuple[str | None, list[Media], str | None]:
    """Text, media and postback of a message's `content`, which `type` says how to read:
    `text`; `image`, `video`, `audio`, `file` (`{url, caption}`); `location` (`{latitude,
    longitude}`, a `geo:` media item as for the other families); `whatsappSticker` (`{link}`);
    `interactive` (a WhatsApp button or list reply: `reply.id` is the postback, `reply.text` the
    text); `whatsappText` (`text.body`); `whatsappOrder` (`text`). Other types (hsm, email,
    rich, ...) give no text: the event still says a message arrived, the raw record has it."""
    kind = text_field(message, "type")
    content = object_field(message, "content")
    media: list[Media] = []
    captions: list[str] = []  # captions of files without a URL, which have no media item
    text: str | None = None
    postback: str | None = None
    if kind == "text":
        text = text_field(content, "text")
    elif kind in ("image", "video", "audio", "file"):
        part = object_field(content, kind)
        add_file(media, captions, text_field(part, "url"), caption=text_field(part, "caption"))
    elif kind == "whatsappSticker":
        add_file(media, captions, text_field(object_field(content, kind), "link"))
    elif kind == "location":
        location = geo_uri(object_field(content, "location"))
        if location is not None:
            media.append(Media.build(url=location))
    elif kind == "interactive":
        reply = object_field(object_field(content, kind), "reply")
        text, postback = text_field(reply, "text"), text_field(reply, "id")
    elif kind == "whatsappText":
        text = text_field(object_field(object_field(content, kind), "text"), "body")
    elif kind == "whatsappOrder":
        text = text_field(object_field(content, kind), "text")
    if captions:  # the caption of a file without a URL is the text (docs/events.md, `text`)
        text = "\n".join(captions)
    return text, media, postback
