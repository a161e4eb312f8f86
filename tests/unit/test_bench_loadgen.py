"""The benchmarks' arithmetic: what they print is only as good as these pure parts."""

from __future__ import annotations

import math

import pytest

from bench.loadgen import LoadResult, percentile

HUNDRED = [float(n) for n in range(1, 101)]


@pytest.mark.parametrize(("values", "q", "expected"), [
    (HUNDRED, 0.99, 99.0),  # not the largest: one value in a hundred is above the p99
    (HUNDRED, 0.5, 50.0),
    (HUNDRED, 0.29, 29.0),  # 0.29 * 100 is just under 29 in floating point
    (HUNDRED, 1.0, 100.0),
    (HUNDRED, 0.0, 1.0),
    ([2.0, 1.0], 0.5, 1.0),  # sorted first; the median of two is the lower one
    ([7.0], 0.99, 7.0),
])
def test_percentile_is_the_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 0.99))
    assert math.isnan(LoadResult().percentile(0.5))


def test_a_load_result_uses_the_same_percentile() -> None:
    assert LoadResult(latencies_ms=HUNDRED).percentile(0.99) == 99.0


def test_the_rate_counts_only_2xx_answers() -> None:
    """The saturation figure and the full/ceiling ratio are of requests the server handled."""
    result = LoadResult(statuses={200: 300, 202: 100, 401: 500, 599: 100}, duration_s=2.0)
    assert result.rate() == 200.0
    assert result.count == 1000


def test_a_result_without_a_duration_has_no_rate() -> None:
    assert LoadResult(statuses={200: 5}).rate() == 0.0
