"""Field readers the Infobip modules share: a report's channel, nested objects, ids,
flags and prices as Infobip writes them in JSON and in XML, and the parts of a message both
inbound readers (Messages API and per-channel) take: a LOCATION's caption and an Apple form's
answers.

A private part of the infobip provider module.
"""

from __future__ import annotations

from typing import Any

from normalizers.base import JsonObject, NormalizeError
from normalizers.channels import channel
from normalizers.fields import EXACT_FLOAT_LIMIT, first, iter_objects, place_caption, text_field
from normalizers.prices import price
from switchboard.events import Price


def report_channel(report: JsonObject, default: str | None) -> str:
    """`channel`, else `integrationType` (Infobip's per-channel APIs: an inbound WhatsApp
    message forwarded without the MO_MESSAGES_API_JSON renderer), else `apple` for a report
    with an Apple Messages for Business address, else `default` (the URL's label, else what
    the report's shape says). A product's label (`KAKAO_SANGDAM`, `LINE_OA`) is its
    channel's (normalizers/channels.py)."""
    label = text_field(report, "channel", "integrationType")
    if label is None and _has_apple_address(report):
        label = "apple"
    return channel(label or default)


# Apple Messages for Business opaque ids, Apple's address of a customer (`urn:mbid:AQAA...`):
# the only thing in a per-channel Apple delivery report, whose shape is the SMS report's with
# no channel, that says which channel it is. No other channel's addresses look so.
_APPLE_ADDRESS_PREFIX = "urn:mbid:"


def _has_apple_address(report: JsonObject) -> bool:
    # Read raw: the addresses are checked where they are read; this runs for every SMS report.
    for key in ("to", "sender", "from", "destination"):
        value = report.get(key)
        if value.__class__ is str and value.startswith(_APPLE_ADDRESS_PREFIX):
            return True
    return False


def optional_object(data: JsonObject, key: str) -> JsonObject | None:
    """A nested object; XML gives "" for an empty element, which counts as absent."""
    value = data.get(key)
    if value.__class__ is dict:
        return value
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise NormalizeError(f"'{key}' should be an object, got {type(value).__name__}")
    return value


# Status and error ids and group ids are small numbers; a longer run of digits is not one.
_MAX_NUMBER_DIGITS = 18


def id_number(value: Any) -> int | None:
    """An integer from JSON or from XML text (ASCII digits, at most _MAX_NUMBER_DIGITS of them);
    anything else is None."""
    if value.__class__ is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= _MAX_NUMBER_DIGITS:
            return int(text)
    return None


def id_code(data: JsonObject) -> str | None:
    """The `id` as a string ("5", whether JSON gave 5 or XML gave "5")."""
    number = id_number(data.get("id"))
    return str(number) if number is not None else text_field(data, "id")


def flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def report_price(report: JsonObject) -> Price | None:
    price_obj = optional_object(report, "price")
    if price_obj is None:
        return None
    return price(first(price_obj, "pricePerMessage"), first(price_obj, "currency"))


def location_caption(part: JsonObject) -> str | None:
    """A LOCATION's caption: the place's `name` and `address` (per-channel WhatsApp; read
    in the Messages API too, whose published part has neither), or LINE's `title` for the
    name."""
    return place_caption(part, "name" if part.get("name") is not None else "title", "address")


# Form pages where the contact typed (INPUT) or picked a date (DATE_PICKER): the item's `value`
# is the answer (a date picker's is a date-time). On the other pages (SELECT, MULTI_SELECT,
# PICKER) they tapped one of our options, whose `title` is the text they saw.
_FORM_VALUE_PAGES = frozenset({"INPUT", "DATE_PICKER"})


def form_answers(form: JsonObject, private_key: str) -> list[str]:
    """The answers of an Apple Messages for Business form (FORM_RESPONSE), one per page item, in
    page order. The per-channel reply has `selections[]` of `{type, item | items}`, the Messages
    API's of `{type, items}`. A private form (`private_key`) gives none: forms collect account
    numbers and passwords, the contact was told the answers are private, and the event's text
    is read by every consumer; the raw record keeps them."""
    if flag(form.get(private_key)):
        return []
    answers: list[str] = []
    for selection in iter_objects(form.get("selections"), "selections"):
        page = (text_field(selection, "type") or "").upper()
        key = "value" if page in _FORM_VALUE_PAGES else "title"
        for item in (*iter_objects(selection.get("item"), "item"),
                     *iter_objects(selection.get("items"), "items")):
            if (answer := text_field(item, key)) is not None:
                answers.append(answer)
    return answers
