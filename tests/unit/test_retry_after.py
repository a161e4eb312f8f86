"""Retry-After as providers send it: seconds, or an HTTP-date (RFC 9110 §10.2.3)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from consumers.outbound.http_errors import retry_after

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("2.5", 2.5),
    ("Tue, 24 Nov 2026 12:00:30 GMT", 30.0),
    ("Tuesday, 24-Nov-26 12:01:00 GMT", 60.0),  # the obsolete RFC 850 form, still allowed
    ("Tue Nov 24 12:00:05 2026", 5.0),  # asctime, also allowed
    ("Tue, 24 Nov 2026 11:59:00 GMT", 0.0),  # already past: retry now
    ("Tue, 24 Nov 2026 12:00:10 -0000", 10.0),
    # Hours (a daily quota spent): the sender, not the reading, decides how long it waits.
    ("7200", 7200.0),
    ("Tue, 24 Nov 2026 14:00:00 GMT", 7200.0),
])
def test_seconds_and_dates_are_read(header: str, seconds: float) -> None:
    assert retry_after(httpx.Response(429, headers={"retry-after": header}), NOW) == seconds


@pytest.mark.parametrize("header", ["", "soon", "-5", "nan", "inf", "1e999",
                                    "Tue, 99 Nov 2026"])
def test_absent_unreadable_or_absurd_values_are_none(header: str) -> None:
    assert retry_after(httpx.Response(429, headers={"retry-after": header}), NOW) is None


@pytest.mark.parametrize("our_clock", [NOW, datetime(2026, 11, 24, 13, 0, 0, tzinfo=UTC),
                                       datetime(2026, 11, 24, 11, 0, 0, tzinfo=UTC)])
def test_a_date_counts_from_the_answers_own_date(our_clock: datetime) -> None:
    # Ours an hour ahead of the provider's, "30 s" read as none; an hour behind, as an hour
    # and 30 s (the account's sends held that long, each command failing meanwhile).
    answer = httpx.Response(429, headers={"retry-after": "Tue, 24 Nov 2026 12:00:30 GMT",
                                          "date": "Tue, 24 Nov 2026 12:00:00 GMT"})
    assert retry_after(answer, our_clock) == 30.0


@pytest.mark.parametrize("date", ["", "yesterday"])
def test_a_date_counts_from_our_clock_when_the_answer_has_no_date_to_read(date: str) -> None:
    answer = httpx.Response(429, headers={"retry-after": "Tue, 24 Nov 2026 12:00:30 GMT",
                                          "date": date})
    assert retry_after(answer, datetime(2026, 11, 24, 12, 0, 10, tzinfo=UTC)) == 20.0
