"""What every provider normalizer shares: the request it reads, its error, and parsing helpers.

Normalizers are pure: bytes and request metadata in, events out. No I/O, no clocks (the
receive time comes in with the request), so they are trivially testable and replayable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from switchboard.addresses import address
from switchboard.events import (
    Direction,
    ErrorInfo,
    EventType,
    Media,
    MessageEvent,
    Price,
    ProviderStatus,
    Status,
    event_id,
)

JsonObject = dict[str, Any]


class NormalizeError(Exception):
    """The payload is not something this provider's normalizer understands.

    `reason` is shown to humans (HTTP error bodies, dead-letter records, the CLI), so it says
    what was expected, never just "invalid".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One webhook call as received, with the context a normalizer may need."""

    provider: str
    account: str
    body: bytes
    received_at: datetime
    raw_id: str
    content_type: str = "application/json"
    # The query string as ASGI gives it: its bytes decoded as Latin-1, %-escapes kept (read it
    # with query_text, which gives the UTF-8 text).
    query: str = ""
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def media_type(self) -> str:
        """The content type without parameters, lower case (`application/json`)."""
        content_type = self.content_type
        if content_type in _PLAIN_MEDIA_TYPES:  # already in that form: nothing to strip
            return content_type
        return content_type.split(";", 1)[0].strip().lower()


# Content types providers send as they are (no parameters, lower case): media_type returns them.
_PLAIN_MEDIA_TYPES = frozenset({
    "application/json", "application/xml", "text/xml", "application/x-www-form-urlencoded",
})


@dataclass(frozen=True, slots=True)
class Ack:
    """The success answer a provider expects once its webhook is safely stored."""

    status_code: int = 200
    body: bytes = b'{"ok":true}'
    content_type: str = "application/json"


DEFAULT_ACK = Ack()


# --- building events -------------------------------------------------------------------------

# Ids and labels (message ids, addresses, channel and status names, codes) longer than this are
# no real values. They are refused, also so that one copied from a batch's envelope into each of
# its events (Webex transid, Omnichat integrationType, Ubiqio event) cannot multiply a body.
# Message text, descriptions, postbacks and media URLs are content and are not limited here.
MAX_ID_LENGTH = 1000
# Correlation ids are senders' own data: Infobip's callbackData takes up to 4000 characters.
MAX_CORRELATION_ID_LENGTH = 4000


def check_length(what: str, value: str | None, limit: int = MAX_ID_LENGTH) -> None:
    """Refuse an id or label longer than `limit` (a NormalizeError naming `what`)."""
    if value is not None and len(value) > limit:
        raise NormalizeError(f"{what} is longer than {limit} characters: {shown(value, 40)}")


def _check_ids(channel: str, message_id: str | None, correlation_id: str | None,
               sender: str | None, recipient: str | None) -> None:
    check_length("channel", channel)
    check_length("message id", message_id)
    check_length("correlation id", correlation_id, MAX_CORRELATION_ID_LENGTH)
    check_length("sender", sender)
    check_length("recipient", recipient)



def status_event(
    request: WebhookRequest,
    *,
    channel: str,
    status: Status,
    message_id: str | None,
    correlation_id: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    error: ErrorInfo | None = None,
    provider_status: ProviderStatus | None = None,
    segments: int | None = None,
    price: Price | None = None,
    occurred_at: datetime | None = None,
) -> MessageEvent:
    """A `message.status` event about a message we sent (direction outbound).

    Ids and labels longer than MAX_ID_LENGTH (correlation ids: MAX_CORRELATION_ID_LENGTH) are
    a NormalizeError.
    """
    _check_ids(channel, message_id, correlation_id, sender, recipient)
    if provider_status is not None:
        check_length("provider status code", provider_status.code)
        check_length("provider status name", provider_status.name)
        check_length("provider status group", provider_status.group)
    if error is not None:
        check_length("error code", error.code)
    status_key = provider_status.name or provider_status.code if provider_status else None
    return MessageEvent.build(
        id=event_id(
            provider=request.provider,
            account=request.account,
            type=EventType.STATUS,
            message_id=message_id,
            status=status_key or status.value,
            occurred_at=occurred_at,
            fallback="" if message_id else f"{correlation_id or ''}|{recipient or ''}",
        ),
        type=EventType.STATUS,
        provider=request.provider,
        account=request.account,
        channel=channel,
        direction=Direction.OUTBOUND,
        message_id=message_id,
        correlation_id=correlation_id,
        from_=address(sender),
        to=address(recipient),
        status=status,
        error=error,
        provider_status=provider_status,
        segments=segments,
        price=price,
        occurred_at=occurred_at,
        received_at=request.received_at,
        raw_id=request.raw_id,
    )


def inbound_event(
    request: WebhookRequest,
    *,
    channel: str,
    message_id: str | None,
    sender: str | None,
    recipient: str | None,
    text: str | None = None,
    media: list[Media] | None = None,
    postback: str | None = None,
    in_reply_to: str | None = None,
    correlation_id: str | None = None,
    segments: int | None = None,
    price: Price | None = None,
    occurred_at: datetime | None = None,
) -> MessageEvent:
    """A `message.inbound` event: a message from an end user.

    Ids and labels longer than MAX_ID_LENGTH (correlation ids: MAX_CORRELATION_ID_LENGTH) are
    a NormalizeError; the text, postback and media are not limited.
    """
    _check_ids(channel, message_id, correlation_id, sender, recipient)
    check_length("in-reply-to message id", in_reply_to)
    return MessageEvent.build(
        id=event_id(
            provider=request.provider,
            account=request.account,
            type=EventType.INBOUND,
            message_id=message_id,
            status=None,
            occurred_at=occurred_at,
            fallback="" if message_id else "|".join(
                part or "" for part in (sender, recipient, text, postback)),
        ),
        type=EventType.INBOUND,
        provider=request.provider,
        account=request.account,
        channel=channel,
        direction=Direction.INBOUND,
        message_id=message_id,
        correlation_id=correlation_id,
        from_=address(sender),
        to=address(recipient),
        text=text,
        media=media or (),
        postback=postback,
        in_reply_to=in_reply_to,
        segments=segments,
        price=price,
        occurred_at=occurred_at,
        received_at=request.received_at,
        raw_id=request.raw_id,
    )


# --- decoding bodies -------------------------------------------------------------------------


def parse_json_object(body: bytes) -> JsonObject:
    """Decode a JSON object body, or explain why it is not one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Only a body that is not JSON can be empty or blank: no copy of every good body.
        if not body.strip():
            raise NormalizeError("empty body; expected a JSON object") from None
        raise NormalizeError(f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NormalizeError(f"expected a JSON object, got a JSON {type(value).__name__}")
    return value


def parse_form(text: bytes | str) -> dict[str, str]:
    """Decode a urlencoded form body, or a query string from query_text; a repeated key keeps
    its last value. A body or %-escape that is not UTF-8 is an error."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise NormalizeError("form body is not UTF-8") from None
    return dict(form_pairs(text))


def query_text(query: str) -> str:
    """A request's query string (`WebhookRequest.query`) as the text its bytes encode in UTF-8.

    Ingest keeps the query as ASGI gives it, its bytes decoded as Latin-1, so bytes sent
    without %-escapes (`café` as raw UTF-8) are recovered by encoding it back; if they are not
    UTF-8 it is an error, as for a form body. A query with characters beyond Latin-1 did not
    come from bytes that way (it was typed, as on the CLI): it is already text.
    """
    if query.isascii():
        return query
    try:
        raw = query.encode("latin-1")
    except UnicodeEncodeError:
        return query
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NormalizeError("query string is not UTF-8") from None


def form_pairs(text: str) -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict")`: the fields of
    a urlencoded form, in order, `+` and `%xx` decoded; it calls the decoder only for a part
    that needs it. %-escapes that are not UTF-8 (`caf%E9`) are a NormalizeError, as a form body
    that is not UTF-8 is, instead of U+FFFD in place of what was sent."""
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = _unquote(name, "form field name")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = _unquote(value, f"form field {shown(name, 40)}")
        pairs.append((name, value))
    return pairs


def _unquote(text: str, what: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise NormalizeError(
            f"{what} has %-escapes that are not UTF-8: {shown(text, 40)}") from None


def parse_xml(body: bytes) -> JsonObject:
    """Decode XML safely (no entities, no external references) into nested dicts.

    Repeated child elements become lists; text-only elements become strings. The root element
    name is kept under the key `_root` so callers can tell document kinds apart.
    """
    try:
        root = SafeET.fromstring(body)
    except SafeET.ParseError as exc:
        raise NormalizeError(f"body is not well-formed XML: {exc}") from None
    except DefusedXmlException as exc:  # entities, DTDs, external references
        raise NormalizeError(f"XML refused: {type(exc).__name__}") from None
    except (ValueError, LookupError) as exc:  # UnicodeError is a ValueError
        # The declared encoding is looked up among Python's codecs: an unknown name
        # (LookupError), a codec that is not a text encoding (rot13, base64), a multi-byte one
        # that expat cannot read (UTF-16-LE, Shift_JIS, ValueError) or one failing (idna).
        declared = _DECLARED_ENCODING.match(body)
        if declared is None:
            raise NormalizeError(f"XML cannot be decoded: {shown(str(exc))}") from None
        name = declared.group(1).decode("ascii", "replace")
        raise NormalizeError(
            f"XML declares encoding {shown(name)}, which is not supported; send UTF-8") from None
    try:
        converted = _xml_element(root)
    except RecursionError:
        raise NormalizeError("XML is nested too deeply") from None
    result: JsonObject = converted if isinstance(converted, dict) else {"_text": converted}
    result["_root"] = _local_name(root.tag)
    return result


# The encoding in an XML declaration (XML 1.0 section 4.3.3: EncName is ASCII).
_DECLARED_ENCODING = re.compile(
    rb"""\s*<\?xml\s[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._-]{0,60})""")


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def _xml_element(element: Any) -> Any:
    if not len(element):
        return (element.text or "").strip()
    result: JsonObject = {}
    for child in element:
        name = _local_name(child.tag)
        value = _xml_element(child)
        if name in result:
            existing = result[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                result[name] = [existing, value]
        else:
            result[name] = value
    return result


def is_xml(request: WebhookRequest) -> bool:
    if request.media_type.endswith("/xml"):
        return True
    start = request.body[:1]
    # Strip (a copy of the body) only when it starts with whitespace.
    return start == b"<" or (start.isspace() and request.body.lstrip()[:1] == b"<")


def is_form(request: WebhookRequest) -> bool:
    return request.media_type == "application/x-www-form-urlencoded"


# --- field helpers ---------------------------------------------------------------------------


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
    value = first(data, *names)
    if value is None or value.__class__ is str:
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


def each_event(request: WebhookRequest, reports: Iterable[JsonObject],
               normalize_report: Callable[[WebhookRequest, JsonObject], MessageEvent | None],
               where: str = "results[{}]") -> list[MessageEvent]:
    """The events of a batch of reports, in order; reports that give none are skipped.

    An error names the report it came from (`where` formatted with its index), so a batch
    of a hundred reports says which one was wrong.
    """
    events: list[MessageEvent] = []
    for index, report in enumerate(reports):
        try:
            event = normalize_report(request, report)
        except NormalizeError as exc:
            raise NormalizeError(f"{where.format(index)}: {exc.reason}") from None
        if event is not None:
            events.append(event)
    return events


# --- loosely keyed payloads ------------------------------------------------------------------


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
# _LOOSE_KEYS_MAX of them, as keys come from webhooks).
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


def key_list(data: Mapping[str, Any]) -> str:
    """The payload's keys for an error message, shortened: bodies can be anything."""
    keys = sorted(data)
    shown = ", ".join(repr(key[:40]) for key in keys[:12])
    return f"[{shown}{', ...' if len(keys) > 12 else ''}]"


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` for an error reason, cut to about `limit` characters: values come from
    webhooks and reasons go to HTTP answers, logs and dead-letter records."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def geo_uri(data: Mapping[str, Any]) -> str | None:
    """A shared location as a `geo:` URI (RFC 5870) from numeric `latitude` and `longitude`."""
    latitude, longitude = data.get("latitude"), data.get("longitude")
    if _is_coordinate(latitude) and _is_coordinate(longitude):
        return f"geo:{latitude},{longitude}"
    return None


def _is_coordinate(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_CHANNELS = {
    "sms": "sms",
    "mms": "mms",
    "whatsapp": "whatsapp",
    "viber": "viber",
    "viber_bm": "viber",
    "viber_bot": "viber",
    "rcs": "rcs",
    "messenger": "messenger",
    "facebook": "messenger",
    "instagram": "instagram",
    "instagram_dm": "instagram",
    "line": "line",
    "line_on": "line",
    "telegram": "telegram",
    "email": "email",
    "apple_mb": "apple",
    "apple": "apple",
    "kakao": "kakao",
    "zalo": "zalo",
    "voice": "voice",
    "branded text": "rcs",
}


# The labels as providers usually spell them (`WHATSAPP`, `sms`), answered without strip/lower.
_CHANNELS_AS_SENT = {
    spelling: name
    for label, name in _CHANNELS.items()
    for spelling in (label, label.upper(), label.title())
}
_not_channel_chars = re.compile(r"[^a-z0-9_.-]+").sub


def channel(value: str | None) -> str:
    """The schema's lower-case channel name for a provider's channel label; a label longer
    than MAX_ID_LENGTH is a NormalizeError."""
    if not value:
        return "unknown"
    if value.__class__ is str:
        known = _CHANNELS_AS_SENT.get(value)
        if known is not None:
            return known
    check_length("channel label", value)
    key = value.strip().lower()
    if key in _CHANNELS:
        return _CHANNELS[key]
    cleaned = _not_channel_chars("-", key).strip("-_.")
    return cleaned or "unknown"


_TIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S.%f%z",  # Infobip: 2019-11-09T16:00:00.000+0000
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
)
# Every format has a "-": a text without one is not tried (strptime is slow, a miss included).
assert all("-" in fmt for fmt in _TIME_FORMATS)
# Unix times as text: seconds (10 digits) or milliseconds (13), what providers send.
_UNIX_TIME_DIGITS = (10, 13)
_COMPACT_TIME_DIGITS = 14  # YYYYMMDDhhmmss


def parse_time(value: Any) -> datetime | None:
    """A provider timestamp as an aware UTC datetime; naive times are taken as UTC.

    Accepts RFC 3339 / ISO 8601, Infobip's `+0000` offsets, space-separated forms, compact
    `YYYYMMDDhhmmss` (exactly 14 digits), and unix seconds or milliseconds (a number, or
    exactly 10 or 13 digits). Digits are ASCII digits. Unparseable values, and times that
    cannot be expressed in UTC (before year 1 or after year 9999), raise NormalizeError.
    """
    if isinstance(value, str):
        return _parse_time_text(value) if value else None  # the usual case, checked first
    if value is None:
        return None
    if isinstance(value, bool):
        raise NormalizeError(f"timestamp {value!r} is not a time")
    if isinstance(value, (int, float)):
        return _unix_time(value, value)
    raise NormalizeError(f"timestamp should be a string, got {type(value).__name__}")


def _unix_time(number: float, value: Any) -> datetime:
    try:
        seconds = float(number)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise NormalizeError(f"timestamp {shown(value)} is out of range") from None


def _parse_time_text(value: str) -> datetime:
    text = value.strip()
    parsed: datetime | None = None
    if text.isascii():  # no format has other characters: a non-ASCII digit is no digit here
        digits = text.isdigit()
        if digits and len(text) in _UNIX_TIME_DIGITS:
            return _unix_time(int(text), value)
        parsed = (_compact_time(text) if digits and len(text) == _COMPACT_TIME_DIGITS
                  else _iso_time(text))
    if parsed is None:
        raise NormalizeError(f"timestamp {shown(value)} is not in a known format")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise NormalizeError(f"timestamp {shown(value)} is out of range") from None


def _compact_time(text: str) -> datetime | None:
    """YYYYMMDDhhmmss, field by field: strptime would also read fewer digits per field."""
    try:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]),
                        int(text[10:12]), int(text[12:]))
    except ValueError:
        return None


def _iso_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return _strptime(text) if "-" in text else None


def _strptime(text: str) -> datetime | None:
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


# A price's amount is written out in full (`Price` serializes it with format "f"): its digits and
# exponent are bounded so that "1e999999999" cannot become a gigabyte of zeros in a record.
# Real per-message prices have a handful of digits and a few decimal places.
MAX_PRICE_DIGITS = 40
MAX_PRICE_EXPONENT = 30


def price(amount: Any, currency: Any) -> Price | None:
    """The price of a report, or None when it gives no amount or no currency.

    An amount that is not a decimal, or one with more than MAX_PRICE_DIGITS digits or an
    exponent beyond +-MAX_PRICE_EXPONENT, is an error, as a price is only ever read from a
    report that claims to state one.
    """
    if amount in (None, "") or not currency:
        return None
    try:
        result = Price(amount=str(amount), currency=str(currency).upper())
    except ValueError:
        raise NormalizeError(
            f"price {shown(amount)} {shown(currency)} is not a decimal amount") from None
    _, digits, exponent = result.amount.as_tuple()
    if len(digits) > MAX_PRICE_DIGITS or not (
            isinstance(exponent, int) and abs(exponent) <= MAX_PRICE_EXPONENT):
        raise NormalizeError(
            f"price {shown(amount)} is out of range: at most {MAX_PRICE_DIGITS} digits and an "
            f"exponent within +-{MAX_PRICE_EXPONENT}")
    return result
