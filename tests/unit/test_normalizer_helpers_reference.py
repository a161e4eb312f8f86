"""The shared normalizer helpers, written for speed, against their plain earlier versions (kept
here as the reference): the same results and the same NormalizeError reasons for any input."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import orjson
import pytest
from defusedxml import ElementTree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normalizers import bodies, channels, fields, times
from normalizers.base import NormalizeError, WebhookRequest
from switchboard import addresses

MANY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the reference versions ------------------------------------------------------------------


def ref_first(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = data.get(name)
        if value not in (None, ""):
            return value
    return None


def ref_text_field(data: Mapping[str, Any], *names: str) -> str | None:
    value = ref_first(data, *names)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        if abs(value) < 2**53:
            return str(int(value))
        raise NormalizeError(
            f"field {names[0]!r} is the number {ref_shown(value)}, too large to be read exactly "
            "(JSON integers beyond 64 bits arrive as floats); send it as a string")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise NormalizeError(f"field {names[0]!r} should be a string, got {type(value).__name__}")


def ref_int_field(data: Mapping[str, Any], *names: str) -> int | None:
    value = ref_first(data, *names)
    if value is None:
        return None
    if isinstance(value, bool) or not (
            isinstance(value, int)
            or (isinstance(value, float) and value.is_integer())
            or (isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value))):
        raise NormalizeError(
            f"field {names[0]!r} should be an integer, got {ref_shown(value)}")
    if isinstance(value, str) and len(value.strip().lstrip("+-").lstrip("0")) > 5:
        return None
    number = int(value)
    return number if 0 <= number <= 10_000 else None


_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{6,20}$")


def ref_address(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or not _PHONE.match(value):
        return value or None
    digits = re.sub(r"[^0-9]", "", value)
    if not value.startswith("+"):
        if digits.startswith("00"):
            digits = digits[2:]
        elif digits.startswith("0"):
            return value
    if len(digits) < 8 or len(digits) > 15 or digits.startswith("0"):
        return value
    return "+" + digits


def ref_channel(value: str | None) -> str:
    if not value:
        return "unknown"
    key = value.strip().lower()
    if key in channels._CHANNELS:
        return channels._CHANNELS[key]
    cleaned = re.sub(r"[^a-z0-9_.-]+", "-", key).strip("-_.")
    return cleaned or "unknown"


def ref_shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def ref_unix_time(number: float, value: Any) -> datetime:
    # In decimal, as written (a float's shortest repr), its microseconds rounded down.
    try:
        with localcontext(prec=1000):
            exact = Decimal(number if isinstance(number, int) else repr(number))
            microseconds = exact * (1000 if exact > 10**11 else 1_000_000)
            whole = int(microseconds.to_integral_value(rounding=ROUND_FLOOR))
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=whole)
    except (OverflowError, ValueError, InvalidOperation):
        raise NormalizeError(f"timestamp {ref_shown(value)} is out of range") from None


def ref_parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise NormalizeError(f"timestamp {value!r} is not a time")
    if isinstance(value, (int, float)):
        return ref_unix_time(value, value)
    if not isinstance(value, str):
        raise NormalizeError(f"timestamp should be a string, got {type(value).__name__}")
    text = value.strip()
    if re.fullmatch(r"[0-9]{10}|[0-9]{13}", text):
        return ref_unix_time(int(text), value)
    compact = re.fullmatch(r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})", text)
    parsed: datetime | None = None
    if compact:
        try:
            year, month, day, hour, minute, second = map(int, compact.groups())
            parsed = datetime(year, month, day, hour, minute, second)
        except ValueError:
            parsed = None
    elif text.isascii():
        iso = f"{text[:-1]}Z" if text.endswith("z") else text  # RFC 3339: z is Z
        try:
            parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        except ValueError:
            for fmt in times._TIME_FORMATS:
                try:
                    parsed = datetime.strptime(iso, fmt)
                    break
                except ValueError:
                    continue
    if parsed is None:
        raise NormalizeError(f"timestamp {ref_shown(value)} is not in a known format")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise NormalizeError(f"timestamp {ref_shown(value)} is out of range") from None


def ref_parse_json_object(body: bytes) -> Any:
    body = body.removeprefix(b"\xef\xbb\xbf")  # one byte order mark, which RFC 8259 allows
    if not body.strip():
        raise NormalizeError("empty body; expected a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise NormalizeError(
                f"body is not UTF-8 (byte 0x{body[bad.start]:02X} at offset {bad.start}); "
                "JSON must be UTF-8 (RFC 8259), whatever charset the content type names"
            ) from None
        raise NormalizeError(f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NormalizeError(f"expected a JSON object, got a JSON {type(value).__name__}")
    return value


def ref_media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def ref_is_xml(request: WebhookRequest) -> bool:
    return (ref_media_type(request.content_type).endswith("/xml")
            or request.body.lstrip()[:1] == b"<")


# --- comparing -------------------------------------------------------------------------------


def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any, str]:
    try:
        result = fn(*args)
    except NormalizeError as exc:
        return "error", exc.reason, ""
    except Exception as exc:  # a crash is compared too: it must be the same crash  # noqa: BLE001
        return "crash", str(exc), type(exc).__name__
    return "value", result, type(result).__name__


class _Str(str):
    pass


SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
           | st.sampled_from(["", " ", "0", "-1", "12", "1.5", "abc", _Str("s"), _Str("")]))
VALUES = SCALARS | st.lists(SCALARS, max_size=2) | st.dictionaries(st.text(max_size=2), SCALARS,
                                                                   max_size=2)
NAMES = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3)
DATA = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), VALUES, max_size=4)


@MANY
@given(DATA, NAMES)
def test_field_helpers_match_the_reference(data: dict[str, Any], names: list[str]) -> None:
    assert _outcome(fields.first, data, *names) == _outcome(ref_first, data, *names)
    assert _outcome(fields.text_field, data, *names) == _outcome(ref_text_field, data, *names)
    assert _outcome(fields.int_field, data, *names) == _outcome(ref_int_field, data, *names)


PHONE_CHARS = st.text(alphabet="+0123456789 ()./-\n\t x٣", max_size=24)
ADDRESSES = PHONE_CHARS | st.text(max_size=24) | st.from_regex(r"\+?0{0,3}[0-9]{0,20}",
                                                                fullmatch=True) | st.sampled_from(
    ["41793026727", "+41 79 302 67 27", "0041793026727", "0911234567", "56263", "1234567",
     "123456", "9" * 21, "9" * 22, "  41793026727\n", "+", "00", "InfoSMS", "²³⁴⁵⁶⁷⁸⁹", ""])


@MANY
@given(st.none() | ADDRESSES)
def test_address_matches_the_reference(value: str | None) -> None:
    assert _outcome(addresses.address, value, "sms") == _outcome(ref_address, value)


CHANNELS = st.text(max_size=12) | st.sampled_from(
    [label for key in channels._CHANNELS for label in (key, key.upper(), key.title(), f" {key} ")]
    + ["WhatsApp", "Some New Thing", "İnstagram", "K", "  ", "-", "SMS\n"])


@MANY
@given(st.none() | CHANNELS)
def test_channel_matches_the_reference(value: str | None) -> None:
    assert _outcome(channels.channel, value) == _outcome(ref_channel, value)


TIMES = (SCALARS | st.datetimes().map(datetime.isoformat)
         | st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat() + "Z")
         | st.sampled_from(["2019-11-09T16:00:00.000+0000", "2024-01-07T14:36:09.266Z",
                            "2015-04-12 13:00:19", "20230727004929", "1690418969",
                            "1690418969000", "169041896", " 2024-01-07T14:36:09Z ",
                            "2024-01-01T00:00Z:00", "Z", "٣٣٣٣٣٣٣٣٣٣", "yesterday",
                            "20230727004929", "2023072700492", "20231327004929",
                            "2015-04-12 13:00:19+0200", "2015-04-12T13:00:19.5",
                            "2015-4-12 13:00:19", "2023/07/27", "999999999", "²²²²²²²²²²",
                            "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                            " 1690418969 ", "٢٠٢٣٠٧٢٧٠٠٤٩٢٩", "20230727",
                            "2024-01-07t14:36:09.266z", "z", "2024-01-07T14:36:09zz"])
         | st.text(alphabet="0123456789-T: .+Zzt", max_size=20)
         | st.datetimes().map(lambda moment: moment.strftime("%Y%m%d%H%M%S")))


@MANY
@given(TIMES)
def test_parse_time_matches_the_reference(value: Any) -> None:
    assert _outcome(times.parse_time, value) == _outcome(ref_parse_time, value)


BODIES = st.binary(max_size=12) | st.sampled_from(
    [b"", b"  ", b"\n\t", b"{}", b" {} ", b"[]", b"{", b"<a/>", b"  <a/>", b"\x0b<a/>", b"\xff",
     b"\xef\xbb\xbf", b"\xef\xbb\xbf{}", b"\xef\xbb\xbf\xef\xbb\xbf{}", b"\xef\xbb\xbf[]"])


@MANY
@given(BODIES)
def test_parse_json_object_matches_the_reference(body: bytes) -> None:
    assert _outcome(bodies.parse_json_object, body) == _outcome(ref_parse_json_object, body)


CONTENT_TYPES = st.text(max_size=12) | st.sampled_from(
    ["application/json", "application/xml", "text/xml", "application/x-www-form-urlencoded",
     "Application/XML", "text/xml; charset=utf-8", " application/json ", ""])


@MANY
@given(CONTENT_TYPES, BODIES)
def test_content_type_helpers_match_the_reference(content_type: str, body: bytes) -> None:
    request = WebhookRequest(provider="infobip", account="a", body=body,
                             received_at=datetime(2026, 1, 1, tzinfo=UTC), raw_id="r",
                             content_type=content_type)
    assert request.media_type == ref_media_type(content_type)
    assert bodies.is_xml(request) == ref_is_xml(request)


def ref_loose_key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


@MANY
@given(st.dictionaries(st.text(alphabet="aB_-İ1", max_size=5), SCALARS, max_size=5))
def test_loose_keys_match_the_reference(data: dict[str, Any]) -> None:
    assert fields.loose_keys(data) == {ref_loose_key(key): value for key, value in data.items()}
    for key in data:
        assert fields.loose_key(key) == ref_loose_key(key)
    assert len(fields._LOOSE_KEYS) <= fields._LOOSE_KEYS_MAX


def ref_xml_element(element: Any) -> Any:
    children = list(element)
    if not children:
        return (element.text or "").strip()
    result: dict[str, Any] = {}
    for child in children:
        name = child.tag.rsplit("}", 1)[-1]
        value = ref_xml_element(child)
        if name in result:
            existing = result[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                result[name] = [existing, value]
        else:
            result[name] = value
    return result


TAGS = st.sampled_from(["a", "b", "results", "{urn:x}a", "{urn:y}b"])
TREES = st.recursive(
    st.tuples(TAGS, st.text(alphabet="x <&1", max_size=4)),
    lambda children: st.tuples(TAGS, st.lists(children, max_size=4)),
    max_leaves=12,
)


def _xml(tree: Any) -> str:
    tag, content = tree
    name, namespace = (tag.split("}")[1], tag[1:].split("}")[0]) if "}" in tag else (tag, "")
    attributes = f' xmlns="{namespace}"' if namespace else ""
    inner = escape(content) if isinstance(content, str) else "".join(map(_xml, content))
    return f"<{name}{attributes}>{inner}</{name}>"


@MANY
@given(TREES)
def test_parse_xml_matches_the_reference(tree: Any) -> None:
    body = _xml(tree).encode()
    root = ElementTree.fromstring(body)
    converted = ref_xml_element(root)
    expected = converted if isinstance(converted, dict) else {"_text": converted}
    expected["_root"] = root.tag.rsplit("}", 1)[-1]
    assert bodies.parse_xml(body) == expected


FORM_PARTS = ["a", "B", "=", "&", "+", "%", "2", "0", "C3", "A9", "zz", ";", "é", " "]
FORMS = st.lists(st.sampled_from(FORM_PARTS), max_size=20).map("".join) | st.sampled_from(
    ["", "&", "a", "a=", "=b", "a=1&a=2", "a=b=c", "%E9=%C3%A9&x+y=1+2", "%zz=%", "&&a=1&&"])


@MANY
@given(FORMS)
def test_form_pairs_match_parse_qsl(text: str) -> None:
    try:
        expected = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:  # a %-escape that is not UTF-8: an error, not U+FFFD
        with pytest.raises(NormalizeError, match="not UTF-8"):
            bodies.form_pairs(text)
        return
    assert bodies.form_pairs(text) == expected
