"""Infobip Messages API inbound messages (`event: MO`): typed content parts become text,
media and postback.

A private part of the infobip provider module, which tells the report kinds apart and calls
`messages_inbound`.
"""

from __future__ import annotations

from collections.abc import Iterable

from normalizers._infobip_fields import (
    form_answers,
    location_caption,
    optional_object,
    report_channel,
    report_price,
)
from normalizers.base import JsonObject, WebhookRequest
from normalizers.event_builders import add_file, inbound_event
from normalizers.fields import first, geo_uri, int_field, iter_objects, text_field
from normalizers.times import parse_time
from switchboard.events import Media, MessageEvent

# Messages API media part types; the part says only the kind, so the type is a MIME range.
_MEDIA_TYPES = {
    "IMAGE": "image/*",
    "AUDIO": "audio/*",
    "VIDEO": "video/*",
    "DOCUMENT": None,
    "FILE": None,
    "URL": None,
}


def messages_inbound(request: WebhookRequest, report: JsonObject,
                     label: str | None) -> MessageEvent | None:
    """A Messages API `MO` event: typed content parts become text, media and postback."""
    content = _Content()
    content.read_parts(iter_objects(report.get("content"), "content"))
    if content.retracted_only():
        return None
    metadata = optional_object(report, "metadata") or {}
    correlation_id = text_field(report, "callbackData") or text_field(metadata, "correlationData")
    return inbound_event(
        request,
        channel=report_channel(report, label),
        message_id=text_field(report, "messageId"),
        sender=text_field(report, "sender", "from"),
        recipient=text_field(report, "destination", "to"),
        text=content.text(),
        media=content.media,
        postback=content.postback,
        in_reply_to=text_field(report, "pairedMessageId"),
        correlation_id=correlation_id,
        segments=int_field(report, "messageCount"),
        price=report_price(report),
        occurred_at=parse_time(first(report, "receivedAt")),
    )


class _Content:
    """What the content parts of one MO add up to."""

    __slots__ = ("media", "postback", "retracted", "subjects", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.media: list[Media] = []
        self.postback: str | None = None
        self.retracted = False
        self.subjects = 0  # how many of `texts` are MMS subjects, which come first

    def text(self) -> str | None:
        return "\n".join(self.texts) if self.texts else None

    def retracted_only(self) -> bool:
        """A removed reaction withdraws something; it is not a message of its own."""
        return self.retracted and not (self.texts or self.media or self.postback)

    def read_parts(self, parts: Iterable[JsonObject]) -> None:
        for part in parts:
            kind = (text_field(part, "type") or "").upper()
            if kind == "TEXT":
                self._add_text(text_field(part, "text", "cleanText"))
            elif kind == "SUBJECT":
                self._add_subject(text_field(part, "text", "cleanText"))
            elif kind in _MEDIA_TYPES:
                add_file(self.media, self.texts, text_field(part, "url"),
                         content_type=_MEDIA_TYPES[kind], caption=text_field(part, "text"))
            elif kind in ("BUTTON_REPLY", "LIST_REPLY"):
                self._add_text(text_field(part, "text"))
                if self.postback is None:
                    self.postback = text_field(part, "payload", "id")
            elif kind == "LOCATION":
                self._add_location(part)
            elif kind == "REACTION":
                self._read_reaction(part)
            elif kind == "FORM_RESPONSE":
                for answer in form_answers(part, "isPrivate"):
                    self._add_text(answer)
            # Other documented parts (AUTHENTICATION_RESPONSE, FLOW_RESPONSE,
            # PAYMENT_RESPONSE) and future ones have no place in schema v1: the event still
            # says a message arrived, and the raw body keeps the rest.

    def _read_reaction(self, part: JsonObject) -> None:
        if (text_field(part, "action") or "ADDED").upper() == "REMOVED":
            self.retracted = True
        else:
            self._add_text(text_field(part, "emoji"))

    def _add_text(self, text: str | None) -> None:
        if text is not None:
            self.texts.append(text)

    def _add_subject(self, subject: str | None) -> None:
        """An MMS subject is the text's first line, before the body, whatever the parts' order
        (Infobip's own sample sends it last), as Bird's MMS subject is."""
        if subject is not None:
            self.texts.insert(self.subjects, subject)
            self.subjects += 1

    def _add_location(self, part: JsonObject) -> None:
        """A place without coordinates or a map URL is no media item; its name is not taken
        for text the contact typed, as a file's caption is (add_file)."""
        if (url := _location_url(part)) is not None:
            self.media.append(Media.build(url=url, caption=location_caption(part)))


def _location_url(part: JsonObject) -> str | None:
    """A `geo:` URI (RFC 5870) when coordinates are given, else the part's map URL."""
    return geo_uri(part) or text_field(part, "url")
