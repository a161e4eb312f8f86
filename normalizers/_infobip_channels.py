"""Infobip inbound SMS (`MO_JSON_2`) and MMS, and the per-channel APIs' inbound messages
(WhatsApp without the Messages API renderer, Messenger, Viber, Viber Bot, RCS, Apple Messages
for Business), which share their envelope: no `event`, a `message` of parts or one object.

A private part of the infobip provider module, which tells the report kinds apart and calls
`sms_inbound`.
"""

from __future__ import annotations

from typing import Any

from normalizers._infobip_fields import (
    form_answers,
    location_caption,
    report_channel,
    report_price,
)
from normalizers.base import JsonObject, NormalizeError, WebhookRequest
from normalizers.event_builders import add_file, inbound_event
from normalizers.fields import (
    as_list,
    first,
    geo_uri,
    int_field,
    iter_objects,
    object_field,
    text_field,
)
from normalizers.times import parse_time
from switchboard.events import Media, MessageEvent

# Per-channel inbound `message` types that carry no message, acknowledged with no event (an
# auto-reply would answer a contact who wrote nothing). Viber Bot: Viber's receipt of one of
# the bot's messages (`DELIVERED`, named by Viber's `messageToken`, not our message id;
# Infobip's Viber Bot delivery reports say the status), a contact subscribing, a contact
# opening the chat. Kakao Sangdam: the consultation session expiring (`EXPIRED_SESSION`).
# LINE Official Account: a contact following the account, the account or members joining or
# leaving a group, beacon, account-link and LINE Things events, and a contact unsending one of
# their messages (`UNSEND`, a retraction, as a removed reaction is). TikTok: the contact
# arriving from an ad or a TikTok.me link (`REFERRAL_AD`, `REFERRAL_SHORT_LINK`; its
# `prefilledMessage` is our link's text, not theirs).
_IGNORED_MESSAGE_EVENTS = frozenset({
    "DELIVERED", "SUBSCRIBED", "CONVERSATION_STARTED",
    "EXPIRED_SESSION",
    "FOLLOW", "JOIN", "LEAVE", "MEMBER_JOIN", "MEMBER_LEAVE", "BEACON", "ACCOUNT_LINK",
    "THINGS", "UNSEND",
    "REFERRAL_AD", "REFERRAL_SHORT_LINK",
})

# Events by which a contact leaves: they may be opt-outs, which schema v1 has no event for, so
# they are refused (kept as dead letters) rather than dropped.
_LEAVING_EVENTS = {
    "UNSUBSCRIBED": "Viber Bot event 'UNSUBSCRIBED' (the contact unsubscribed from the bot)",
    "UNFOLLOW": "LINE event 'UNFOLLOW' (the contact blocked the LINE Official Account)",
}


def sms_inbound(request: WebhookRequest, report: JsonObject,
                label: str | None) -> MessageEvent | None:
    """Inbound SMS (`MO_JSON_2`) or MMS (the same envelope with a `message[]` of parts).

    Infobip's per-channel inbound (WhatsApp without the MO_MESSAGES_API_JSON renderer, Apple
    Messages for Business, Viber) has the same envelope with one `message` object and an
    `integrationType`, which names the channel: such a message is not an MMS (nor is
    Messenger's, which has no `integrationType`); a Viber Bot's `message` is an event whose
    own `message` is the contact's. Events that carry no message give none
    (`_IGNORED_MESSAGE_EVENTS`) but for a contact leaving (`_LEAVING_EVENTS`), refused. A
    per-channel typing indicator (Apple's) is not a message: no event, as for the Messages
    API's.
    """
    texts: list[str] = []
    media: list[Media] = []
    postback: str | None = None
    parts = report.get("message")
    if parts.__class__ is dict:
        kind = (text_field(parts, "type") or "").upper()
        if kind == "TYPING_INDICATOR" or _removed_reaction(kind, parts):
            return None
        if kind == "MESSAGE":  # a Viber Bot event: the contact's message is nested in it
            parts = _viber_bot_message(object_field(parts, "message"))
        elif kind in _IGNORED_MESSAGE_EVENTS:
            return None
        elif kind in _LEAVING_EVENTS:
            raise NormalizeError(
                f"{_LEAVING_EVENTS[kind]} is not read: it may be an opt-out, which schema v1 "
                "has no event for, so it is kept as a dead letter rather than dropped")
    for part in iter_objects(parts, "message"):
        if roadside := object_field(part, "rsaContent"):
            part = _roadside(roadside)
        for identifier, title in _choices(part):
            if title is not None:
                texts.append(title)
            postback = postback or identifier
        # Apple Messages for Business files come as the message's `attachments[]`
        for attachment in iter_objects(part.get("attachments"), "attachments"):
            if (attachment_url := text_field(attachment, "url")) is not None:
                media.append(Media.build(url=attachment_url))
        # TikTok's image is `mediaUrl`, a shared post `embedUrl`, an AI emoji reaction's image
        # `aiEmojiUrl`; a reaction's emoji is read as a caption, the text without an image.
        url = text_field(part, "url", "mediaUrl", "embedUrl", "aiEmojiUrl")
        content_type = text_field(part, "contentType", "fileType")  # Zalo's: `fileType`
        caption = text_field(part, "caption", "emoji")
        # Coordinates first: a per-channel WhatsApp LOCATION may carry a `url`, the place's
        # website, which would otherwise stand in for the place.
        if (location := geo_uri(part)) is not None:
            media.append(Media.build(url=location, caption=location_caption(part)))
        elif url is not None or caption is not None:  # a file, fetchable or not
            add_file(media, texts, url, content_type=content_type, caption=caption)
        elif (content_type or "text/plain").lower().startswith("text/"):
            value = text_field(part, "value", "text")
            if value is not None:
                texts.append(value)
        media.extend(_kakao_files(part, url))
    # A text beside the message's own texts (a caption whose file has no URL, a pick's title)
    # does not replace them: they are joined, the same words once (docs/events.md, `text`).
    text = text_field(report, "text", "cleanText")
    if texts:
        text = "\n".join([text, *(t for t in texts if t != text)] if text is not None
                          else texts)
    return inbound_event(
        request,
        channel=report_channel(report, label or _inbound_default_channel(parts)),
        # Messenger's carries no Infobip messageId, only Meta's `message.mid`.
        message_id=text_field(report, "messageId") or (
            text_field(parts, "mid") if parts.__class__ is dict else None),
        sender=text_field(report, "from", "sender"),
        recipient=text_field(report, "to", "destination"),
        text=text,
        media=media,
        postback=postback,
        in_reply_to=text_field(report, "pairedMessageId"),
        correlation_id=text_field(report, "callbackData"),
        segments=int_field(report, "smsCount", "messageCount"),
        price=report_price(report),
        occurred_at=parse_time(first(report, "receivedAt")),
    )


def _kakao_files(part: JsonObject, url: str | None) -> list[Media]:
    """Kakao Sangdam's further files: a `TEXT`'s `attachmentUrl`, and a file message's
    `urlsDetails[]` (`{url, comment}`, one or more) beside its `url`, which is not repeated."""
    urls = [text_field(part, "attachmentUrl"),
            *(text_field(detail, "url")
              for detail in iter_objects(part.get("urlsDetails"), "urlsDetails"))]
    found: list[Media] = []
    for extra in urls:
        if extra is not None and extra != url and all(m.url != extra for m in found):
            found.append(Media.build(url=extra))
    return found


def _removed_reaction(kind: str, message: JsonObject) -> bool:
    """A reaction withdrawn (TikTok's `action: REMOVED`) is not a message, as the Messages
    API's is not. Infobip's XML leaves `type` out: there a `reactionType` says it."""
    return ((kind == "REACTION" or "reactionType" in message)
            and (text_field(message, "action") or "ADDED").upper() == "REMOVED")


def _viber_bot_message(message: JsonObject) -> JsonObject:
    """The contact's message in a Viber Bot event (`{type: MESSAGE, messageToken, sender,
    message}`) as a part of the shape the other per-channel messages have: a file's, image's
    or video's `text` (what goes with it, as an image's description) is its caption, and a
    LOCATION's `location{latitude, longitude, address}` the coordinates and the place."""
    part = dict(message)
    if part.get("url") is not None and part.get("caption") is None:
        part["caption"] = part.pop("text", None)
    if location := object_field(message, "location"):
        part.update(latitude=location.get("latitude"), longitude=location.get("longitude"),
                    address=location.get("address"))
    return part


def _inbound_default_channel(parts: Any) -> str:
    """The channel of an inbound report that names none: `sms` without parts, `mms` with MMS
    parts (`message[]` of `{contentType, value | url}`), `unknown` for one per-channel message
    object (`{type, ...}`: Messenger's has no `integrationType`, and nothing else says which
    channel sent it)."""
    if parts.__class__ is dict and "type" in parts and "contentType" not in parts:
        return "unknown"
    return "mms" if as_list(parts) else "sms"


# Per-channel WhatsApp replies to our interactive buttons and list rows: `{id, title}`.
_WHATSAPP_REPLIES = frozenset({"INTERACTIVE_BUTTON_REPLY", "INTERACTIVE_LIST_REPLY"})


def _choices(part: JsonObject) -> list[tuple[str | None, str | None]]:
    """What a contact picked in a per-channel message, as (identifier, title) pairs: the
    identifier is the postback, the title the text they saw, as for the Messages API's
    BUTTON_REPLY and LIST_REPLY.

    WhatsApp: a button or list row of ours (`INTERACTIVE_BUTTON_REPLY`/`_LIST_REPLY`, `{id,
    title}`), or a template's quick-reply `BUTTON`, whose `payload` is the postback (its `text`
    is read as any message's). Messenger: a template button's `POSTBACK` (`{payload, title}`),
    or a quick reply, a `TEXT` whose `text` is the reply's title and whose `quickReply.payload`
    is ours. LINE: a `POSTBACK` action's `data`, and for a date-time picker its pick
    (`paramDatetime`, `paramDate` or `paramTime`) as the title. RCS: a suggested reply of ours
    (`SUGGESTION`, `{text, postbackData}`; its `text` is read as any message's). Apple
    Messages for Business: a quick reply (`quickReplySelectedItem`) or list picker
    (`listPickerSelectedItems[]`); a time picker's pick is the time slot we offered
    (`selectedTimeslotIdentifier`) and its start as Infobip gives it (`selectedTime`, a UTC
    time): the reply names no title. A form's answers are titles without an identifier
    (`form_answers`). Kakao Sangdam: a `TEXT`'s `extra`, which our `REPLY` and
    `REPLY_WITH_TEXT` buttons pass with the reply ("Additional metadata passed with the reply
    event"; that it comes back as the TEXT's `extra` is inferred)."""
    kind = (text_field(part, "type") or "").upper()
    if kind in _WHATSAPP_REPLIES:
        return [(text_field(part, "id"), text_field(part, "title"))]
    if kind == "BUTTON":
        return [(text_field(part, "payload"), None)]
    if kind == "POSTBACK":  # LINE's: `data`, and the date or time a picker action chose
        return [(text_field(part, "payload", "data"),
                 text_field(part, "title", "paramDatetime", "paramDate", "paramTime"))]
    if kind == "SUGGESTION":
        return [(text_field(part, "postbackData"), None)]
    if quick_reply := object_field(part, "quickReply"):
        return [(text_field(quick_reply, "payload"), None)]
    if kind == "TEXT" and (extra := text_field(part, "extra")) is not None:
        return [(extra, None)]  # Kakao Sangdam: the `extra` of our reply button (inferred)
    if kind == "FORM_RESPONSE":
        return [(None, answer) for answer in form_answers(part, "privateForm")]
    items = [*iter_objects(part.get("quickReplySelectedItem"), "quickReplySelectedItem"),
             *iter_objects(part.get("listPickerSelectedItems"), "listPickerSelectedItems")]
    choices = [(text_field(item, "identifier"), text_field(item, "title")) for item in items]
    slot = text_field(part, "selectedTimeslotIdentifier")
    time = text_field(part, "selectedTime")
    if slot is not None or time is not None:
        choices.append((slot, time))
    return choices


def _roadside(content: JsonObject) -> JsonObject:
    """An Apple roadside assistance message (over satellite; its content is the message's
    `rsaContent`) as a part of the shape the other messages have: a TEXT's `text`, what the
    contact typed, and a LOCATION's `position` (a REQUEST's `location.position`) as
    coordinates. A REQUEST's questionnaire and a STATUS have no place in schema v1."""
    position = (object_field(content, "position")
                or object_field(object_field(content, "location"), "position"))
    return {"text": content.get("text"), "latitude": position.get("latitude"),
            "longitude": position.get("longitude")}
