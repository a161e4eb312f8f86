"""Unix times read exactly, by one fraction rule: a provider's Unix seconds or milliseconds are
the time they say to the microsecond, year 9999 too (float division was microseconds off
there), and a fraction finer than a microsecond is cut off, toward the past, as a text time's
is (a Unix number's was rounded: 1.9999999 was second 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from normalizers.base import NormalizeError
from normalizers.times import parse_time


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [
    # Milliseconds, integer: exact to the last one in year 9999 (was .998993).
    (253402300799999, utc(9999, 12, 31, 23, 59, 59, 999000)),
    ("1767225600123", utc(2026, 1, 1, 0, 0, 0, 123000)),  # 13 digits: milliseconds
    (253402300799999.9, utc(9999, 12, 31, 23, 59, 59, 999900)),
    (1767225600123, utc(2026, 1, 1, 0, 0, 0, 123000)),
    (1767225600123.4567, utc(2026, 1, 1, 0, 0, 0, 123456)),
    (100000000001, utc(1973, 3, 3, 9, 46, 40, 1000)),  # just past 10^11: milliseconds
    # Seconds, fractions cut off at the microsecond as text's are.
    (1.9999999, utc(1970, 1, 1, 0, 0, 1, 999999)),
    (1700000000.9999998, utc(2023, 11, 14, 22, 13, 20, 999999)),
    (1700000000.3, utc(2023, 11, 14, 22, 13, 20, 300000)),  # as written, not the float's .2999...
    (1e-7, utc(1970, 1, 1)),
    (0.0, utc(1970, 1, 1)),
    (-0.0, utc(1970, 1, 1)),
    (99999999999, utc(5138, 11, 16, 9, 46, 39)),  # 10^11 - 1: still seconds
    (99999999999.5, utc(5138, 11, 16, 9, 46, 39, 500000)),
    # Negative: before 1970, cut toward the past too (as 1969-12-31T23:59:59.9999999Z is).
    (-1, utc(1969, 12, 31, 23, 59, 59)),
    (-1e-7, utc(1969, 12, 31, 23, 59, 59, 999999)),
    (-1.9999999, utc(1969, 12, 31, 23, 59, 58)),
    (-1.5, utc(1969, 12, 31, 23, 59, 58, 500000)),
    # Year 1, its first moment: the earliest time there is.
    (-62135596800, utc(1, 1, 1)),
    (-62135596800.0, utc(1, 1, 1)),
    (-62135596799.9999995, utc(1, 1, 1)),  # the float nearest is -62135596800.0
    (-62135596799.5, utc(1, 1, 1, 0, 0, 0, 500000)),
])
def test_a_unix_time_is_read_exactly_and_its_fraction_cut_off(value: Any, expected: datetime
                                                               ) -> None:
    assert parse_time(value) == expected


def test_a_unix_fraction_is_cut_off_as_the_same_time_in_text_is() -> None:
    assert parse_time(1767225600.1234567) == parse_time("2026-01-01T00:00:00.1234567Z")
    assert parse_time(-0.0000001) == parse_time("1969-12-31T23:59:59.9999999Z")


@pytest.mark.parametrize("value", [
    253402300800000,  # 10000-01-01 in milliseconds
    -62135596801,  # a second before year 1
    -62135596800.5,
    1e20, -1e20, 1e308, -1e308, float("inf"), float("-inf"), float("nan"),
    10**400, -(10**400),
])
def test_a_unix_time_outside_years_1_to_9999_is_out_of_range(value: Any) -> None:
    with pytest.raises(NormalizeError, match=r"^timestamp .* is out of range$"):
        parse_time(value)
