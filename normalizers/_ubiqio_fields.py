"""The fields of Ubiqio's reports, each with the spellings accepted for it (the keys
docs/providers/ubiqio.md lists), and the small readers the ubiqio modules share: a field by
its names, an address, the channel, the price and a status word.

A private part of the ubiqio provider module.
"""

from __future__ import annotations

import re
from typing import Any

from normalizers.base import JsonObject
from normalizers.channels import channel
from normalizers.fields import first, loose_key, loose_keys, text_field
from normalizers.prices import price
from switchboard.events import Price


class Names:
    """The accepted spellings of one field: as shown in errors and docs, and as compared."""

    __slots__ = ("keys", "shown")

    def __init__(self, *shown: str) -> None:
        self.shown = shown
        self.keys = tuple(loose_key(name) for name in shown)

    def __str__(self) -> str:
        return ", ".join(self.shown)


KIND_KEYS = ("event", "eventtype", "webhooktype", "kind", "type")
MESSAGE_ID = Names("messageId", "msgId", "messageUuid", "messageSid", "id")
CLIENT_REF = Names("clientRef", "clientReference", "reference", "ref", "correlationId",
                   "externalId")
# `msisdn` is the end user's number: the recipient of a report, the sender of an inbound.
REPORT_TO = Names("toNumber", "to", "recipient", "destination", "msisdn", "phoneNumber",
                  "mobileNumber")
REPORT_FROM = Names("fromNumber", "from", "sender", "senderId", "originator")
INBOUND_FROM = Names("fromNumber", "from", "sender", "originator", "msisdn", "phoneNumber",
                     "mobileNumber")
INBOUND_TO = Names("toNumber", "to", "recipient", "destination", "shortCode")
STATUS = Names("status", "messageStatus", "deliveryStatus", "state")
STATUS_CODE = Names("statusCode")
STATUS_TEXT = Names("statusDescription", "statusMessage", "description")
ERROR = Names("error", "errors")
ERROR_CODE = Names("errorCode")
ERROR_TEXT = Names("errorMessage", "errorDescription", "statusReason", "reason")
STATUS_TIME = Names("timestamp", "statusTime", "statusAt", "statusDate", "updatedAt",
                    "deliveredAt", "deliveryTime", "doneAt", "sentAt", "eventTime", "time",
                    "dateTime", "date", "createdAt")
INBOUND_TIME = Names("receivedAt", "receivedTime", "timestamp", "eventTime", "time",
                     "dateTime", "date", "createdAt", "sentAt")
TEXT = Names("message", "text", "body", "content", "messageText")
IMAGE_URL = Names("imageUrl", "mediaUrl", "url")
MEDIA_LISTS = Names("mediaUrls", "media", "attachments", "images")
IN_REPLY_TO = Names("inReplyTo", "replyToMessageId", "originalMessageId")
SEGMENTS = Names("segments", "segmentCount", "numSegments", "messageCount", "smsCount")
PRICE = Names("price", "cost")
NOT_WORD = re.compile(r"[^a-z0-9]+")


def first_of(report: JsonObject, names: Names) -> Any:
    return first(report, *names.keys)


def text_of(report: JsonObject, names: Names) -> str | None:
    return text_field(report, *names.keys)


def status_word(value: str) -> str:
    return NOT_WORD.sub("_", value.strip().lower()).strip("_")


def address(report: JsonObject, names: Names) -> str | None:
    """A phone number or id, also when given as an object such as {"number": ...}."""
    value = first_of(report, names)
    if isinstance(value, dict):
        return text_field(loose_keys(value), "number", "phonenumber", "phone", "msisdn",
                          "address", "id")
    return text_of(report, names)


def report_channel(report: JsonObject, *, has_media: bool) -> str:
    """Ubiqio sends SMS or MMS: with no `channel`, a message with media is MMS, else SMS."""
    label = report.get("channel")
    if isinstance(label, str) and label.strip():
        return channel(label)
    for key in ("type", "messagetype"):
        value = report.get(key)
        if isinstance(value, str) and value.strip().lower() in ("sms", "mms"):
            return value.strip().lower()
    return "mms" if has_media else "sms"


def report_price(report: JsonObject) -> Price | None:
    value = first_of(report, PRICE)
    if isinstance(value, dict):
        fields = loose_keys(value)
        return price(first(fields, "amount", "value", "price", "pricepermessage"),
                     first(fields, "currency"))
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return price(value, first(report, "currency", "pricecurrency"))
    return None
