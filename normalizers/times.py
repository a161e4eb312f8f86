"""Provider timestamps as aware UTC datetimes.

Providers write times in half a dozen ways (ISO 8601 with or without offset, `+0000`,
compact digits, unix seconds or milliseconds); events always carry UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from normalizers.base import NormalizeError, shown

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
# A Unix number past this is milliseconds (in seconds it would be past year 5138).
_UNIX_MILLISECONDS_PAST = 10**11
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COMPACT_TIME_DIGITS = 14  # YYYYMMDDhhmmss

# RFC 3339 (5.6, 5.7) allows second 60, a leap second (23:59:60Z; 00:59:60+01:00 in another
# offset), which datetime cannot hold. It is read as the leap second's last microsecond,
# hh:mm:59.999999: the same minute and day, after every earlier time. The next second would
# move a report of the year's last second into the next year. Its fraction is dropped.
_LEAP_SECOND = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}):60(?:\.\d+)?")
_LEAP_SECOND_END = 999_999  # microseconds


def parse_time(value: Any) -> datetime | None:
    """A provider timestamp as an aware UTC datetime; naive times are taken as UTC.

    Accepts RFC 3339 / ISO 8601, Infobip's `+0000` offsets, space-separated forms, compact
    `YYYYMMDDhhmmss` (exactly 14 digits), and unix seconds or milliseconds (a number, or
    exactly 10 or 13 digits). A leap second (second 60) is its last microsecond, hh:mm:59.999999
    (_LEAP_SECOND). Digits are ASCII digits. Unparseable values, and times that
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


def _unix_time(number: int | float, value: Any) -> datetime:
    """Unix seconds or milliseconds, in whole numbers: float division was microseconds off
    near year 9999. A fraction finer than a microsecond is cut off, toward the past, as a
    text time's is (fromtimestamp rounded it: 1.9999999 was second 2)."""
    try:
        if isinstance(number, int):
            if number > _UNIX_MILLISECONDS_PAST:
                return _UNIX_EPOCH + timedelta(milliseconds=number)
            return _UNIX_EPOCH + timedelta(seconds=number)
        numerator, denominator = _as_written(number)
        per_unit = 1000 if numerator > _UNIX_MILLISECONDS_PAST * denominator else 1_000_000
        return _UNIX_EPOCH + timedelta(microseconds=numerator * per_unit // denominator)
    except (OverflowError, ValueError):  # past year 9999 or before year 1; inf, nan
        raise NormalizeError(f"timestamp {shown(value)} is out of range") from None


def _as_written(number: float) -> tuple[int, int]:
    """The number as its shortest decimal (repr, as normalizers.fields reads a float's
    digits), a numerator over a denominator: the digits the provider's JSON gave, which the
    float is only the nearest binary fraction to (1700000000.3 is 1700000000.2999999523...:
    cut off, its .3 would lose a microsecond). OverflowError for inf, ValueError for nan."""
    return Decimal(repr(number)).as_integer_ratio()


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
    second, microsecond = int(text[12:]), 0
    if second == 60:  # a leap second (_LEAP_SECOND)
        second, microsecond = 59, _LEAP_SECOND_END
    try:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]),
                        int(text[10:12]), second, microsecond)
    except ValueError:
        return None


def _iso_time(text: str) -> datetime | None:
    if text[-1:] == "z":  # RFC 3339 (5.6) allows a lower-case Z; fromisoformat does not
        text = f"{text[:-1]}Z"
    parsed = _iso_text(text)
    if parsed is None and (leap := _LEAP_SECOND.match(text)) is not None:
        parsed = _iso_text(f"{leap[1]}:59{text[leap.end():]}")
        return parsed.replace(microsecond=_LEAP_SECOND_END) if parsed is not None else None
    return parsed


def _iso_text(text: str) -> datetime | None:
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

