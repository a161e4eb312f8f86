"""Reading fields from decoded payloads whose shape and key spelling vary by provider.

Providers send numbers as strings and strings as numbers, one item or a list, `toNumber` or
`to_number`: these readers give normalizers a typed value or an explained NormalizeError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from normalizers.base import JsonObject, NormalizeError, shown


def first(data: Mapping[str, Any], *names: str) -> Any:
    """The value of the first of `names` present and not empty (providers vary key spelling)."""
    for name in names:
        value = data.get(name)
        if value is not None and value != "":
            return value
    return None


def text_field(data: Mapping[str, Any], *names: str) -> str | None:
    """Like `first`, but always a string (numbers become strings) or None.

    A float holding an integer is written as that integer (`103.0` is code "103"). One at or
    beyond 2**53 is an error: a float does not hold every such integer, and JSON integers
    beyond 64 bits arrive as floats, so 18446744073709551617 and ...618 would become one id.
    """
    for name in names:  # `first`, without a call of its own: a dozen per report
        value = data.get(name)
        if value is not None and value != "":
            break
    else:
        return None
    if value.__class__ is str:
        return value
    if isinstance(value, float):
        return _float_text(value, names[0])
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise NormalizeError(f"field {names[0]!r} should be a string, got {type(value).__name__}")


# Every integer below it is a float exactly; at and beyond it floats skip integers.
EXACT_FLOAT_LIMIT = 2**53


def _float_text(value: float, name: str) -> str:
    if not value.is_integer():
        return str(value)  # 1.5; nan and inf never come from JSON
    if abs(value) < EXACT_FLOAT_LIMIT:
        return str(int(value))
    raise NormalizeError(
        f"field {name!r} is the number {shown(value)}, too large to be read exactly (JSON "
        "integers beyond 64 bits arrive as floats); send it as a string")


def number_text(value: int | float, name: str) -> str:
    """A number that names something (a status, an error code) as text, as text_field writes
    it: 1 and 1.0 are "1". A fraction names nothing, so 1.5 is an error rather than "1.5"."""
    if not isinstance(value, float):
        return str(value)
    if not value.is_integer():
        raise NormalizeError(f"field {name!r} should be a whole number, got {shown(value)}")
    return _float_text(value, name)


# The largest count int_field reads (a segment count: providers split a message into at most a
# few hundred parts). Beyond it a number is not a count.
MAX_COUNT = 10_000
_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")


def int_field(data: Mapping[str, Any], *names: str) -> int | None:
    """Like `first`, but a count: an integer from 0 to MAX_COUNT, or None.

    An integer outside that range (`-1`, `1e308`, four thousand nines) is None: it is no count,
    and counts are optional, as a negative one always was. What is not an integer at all
    (`true`, `1.5`, `"abc"`, Unicode digits) is an error.
    """
    value = first(data, *names)
    if value is None:
        return None
    if value.__class__ is int:
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        if len(value.strip().lstrip("+-").lstrip("0")) > len(str(MAX_COUNT)):
            return None  # out of range, without reading thousands of digits
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise NormalizeError(f"field {names[0]!r} should be an integer, got {shown(value)}")
    return number if 0 <= number <= MAX_COUNT else None


def as_list(value: Any) -> list[Any]:
    """XML and lenient JSON give one item or a list; normalizers want a list."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def iter_objects(items: Any, what: str) -> Iterator[JsonObject]:
    for index, item in enumerate(as_list(items)):
        if not isinstance(item, dict):
            raise NormalizeError(f"{what}[{index}] should be an object, got {type(item).__name__}")
        yield item


def object_field(parent: Mapping[str, Any], key: str) -> JsonObject:
    """An optional nested object: {} when absent or null, a typed error when not an object."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NormalizeError(f"field {key!r} should be an object, got {type(value).__name__}")
    return value


def loose_key(name: str) -> str:
    """A key as compared where spelling varies: lower case, without `_` and `-`
    (`to_number`, `toNumber` and `TO-NUMBER` are the same key)."""
    known = _LOOSE_KEYS.get(name)
    if known is None:
        known = name.replace("_", "").replace("-", "").lower()
        if len(_LOOSE_KEYS) < _LOOSE_KEYS_MAX:
            _LOOSE_KEYS[name] = known
    return known


# Payloads use few distinct key spellings: their loose forms are remembered (at most
# _LOOSE_KEYS_MAX of them, as keys come from webhooks). The one table normalizers share: ingest
# normalizes large bodies on worker threads (ingest.normalizing.off_loop_if_large) while the event
# loop normalizes small ones. Unlocked on purpose: each get and set is atomic, a key's loose form
# is the same whoever computes it, and racing threads can only pass the bound by one key each.
_LOOSE_KEYS: dict[str, str] = {}
_LOOSE_KEYS_MAX = 4096


def loose_keys(data: Mapping[str, Any]) -> JsonObject:
    """The object with its keys as `loose_key` compares them."""
    return {loose_key(key): value for key, value in data.items()}


@dataclass(frozen=True, slots=True)
class Batch:
    """Where a loosely shaped webhook keeps its reports: a list under one of `list_keys`, an
    object under one of `wrapper_keys`, or the body itself, nested up to `max_depth` deep.

    Returned reports have `loose_keys`. Only `carried_keys` pass from an envelope to its
    reports: envelope counts such as `messageCount` describe the batch, not each message. An
    object holding any of `report_keys` is a report itself, so its lists are not a batch.
    """

    list_keys: tuple[str, ...]
    carried_keys: tuple[str, ...]
    max_depth: int
    wrapper_keys: tuple[str, ...] = ()
    report_keys: tuple[str, ...] = ()

    def reports(self, data: Mapping[str, Any], inherited: JsonObject | None = None,
                depth: int = 0) -> list[JsonObject]:
        fields = {**(inherited or {}), **loose_keys(data)}
        if depth >= self.max_depth or any(key in fields for key in self.report_keys):
            return [fields]
        carried = {key: fields[key] for key in self.carried_keys if key in fields}
        for key in self.list_keys:
            value = fields.get(key)
            if isinstance(value, list):
                return [report for item in iter_objects(value, key)
                        for report in self.reports(item, carried, depth + 1)]
        for key in self.wrapper_keys:
            value = fields.get(key)
            if isinstance(value, dict):
                return self.reports(value, carried, depth + 1)
        return [fields]


def geo_uri(data: Mapping[str, Any]) -> str | None:
    """A shared location as a `geo:` URI (RFC 5870) from `latitude` and `longitude`.

    Each is a JSON number, or a decimal string (`"52.3702"`, `" -4.9 "`) as Webex writes most
    numbers and as XML gives every value. A latitude outside -90..90 or a longitude outside
    -180..180, or anything else (`"52,37"`: a decimal comma, or a pair in one field; `"1e3"`;
    `true`), gives None: no location rather than a `geo:` URI that is not one.
    """
    latitude = _coordinate(data.get("latitude"), 90)
    longitude = _coordinate(data.get("longitude"), 180)
    if latitude is None or longitude is None:
        return None
    return f"geo:{latitude},{longitude}"


# A coordinate as a string: degrees (at most three digits) with an optional fraction.
_DECIMAL = re.compile(r"\s*[+-]?[0-9]{1,3}(?:\.[0-9]+)?\s*")


def _coordinate(value: Any, limit: int) -> str | None:
    """`value` as RFC 5870 writes a coordinate (digits, a fraction, no exponent, no `+`), or
    None when it is no number from -limit to limit."""
    number: int | float
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            return None
        text = value.strip()
        number = float(text) if "." in text else int(text)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    else:
        return None
    if not -limit <= number <= limit:  # also refuses nan
        return None
    if isinstance(number, float):
        # Python writes 0.00001 as 1e-05, which is no geo: coordinate: a pin within metres
        # of the equator or the Greenwich meridian. Decimal writes the same digits plainly.
        return format(Decimal(repr(number)), "f")
    return str(number)


def place_caption(place: Any, name_key: str, address_key: str) -> str | None:
    """The caption of a shared location's `geo:` media item: the place's name and address
    (each provider has its own keys for them), one per line, either alone, None for neither,
    so a consumer sees "Joe's Cafe" and not only coordinates. A name that is its address (a
    pin some clients label with the address) is shown once. A `place` that is no object, or a
    value that is no text, counts as absent: a label must not cost the message its coordinates.
    """
    if not isinstance(place, dict):
        return None
    name, address = _place_text(place.get(name_key)), _place_text(place.get(address_key))
    if name is not None and address is not None and name != address:
        return f"{name}\n{address}"
    return name if name is not None else address


def subject_and_text(subject: str | None, text: str | None) -> str | None:
    """An MMS's subject line and text, one per line, subject first (as Infobip's MMS subject
    and text parts are joined); either alone when the other is absent or empty."""
    if not subject:
        return text
    return f"{subject}\n{text}" if text else subject


def _place_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    return None
