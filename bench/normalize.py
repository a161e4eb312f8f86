"""Normalizer cost per event, per fixture, against `orjson.loads` of the same bytes.

The baseline is measured in the same run on the same bytes, so the ratio is meaningful on a
noisy machine even when the absolute microseconds are not.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import orjson

from normalizers import NormalizeError, normalize
from tests.fixtures import Fixture, load_fixtures

TARGET_US = 50.0
HEADLINE = "infobip/messages-delivery-whatsapp"


def _per_call_us(fn: Callable[[], object], budget_s: float = 0.15, min_calls: int = 50) -> float:
    """Median of 5 timed rounds, each as many calls as fit the budget (bounded)."""
    calls = 0
    start = time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < budget_s / 5:
        fn()
        calls += 1
        if calls >= 100_000:
            break
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return sorted(rounds)[2]


def _normalize_once(fixture: Fixture) -> Callable[[], object]:
    request = fixture.request()

    def run() -> object:
        try:
            return normalize(request)
        except NormalizeError:
            return None

    return run


def main() -> int:
    fixtures = [f for f in load_fixtures() if f.spec.get("events")]
    print(f"{'fixture':55} {'events':>6} {'µs/event':>9} {'µs/req':>8} {'loads µs':>9} "
          f"{'ratio':>6}")
    headline: tuple[float, float, float] | None = None
    for fixture in fixtures:
        body = fixture.body()
        events = len(fixture.spec["events"])
        per_request = _per_call_us(_normalize_once(fixture))
        baseline = _per_call_us(functools.partial(_loads_or_none, body))
        ratio = per_request / baseline if baseline else float("inf")
        print(f"{fixture.id:55} {events:>6} {per_request / events:>9.1f} {per_request:>8.1f} "
              f"{baseline:>9.2f} {ratio:>6.1f}")
        if fixture.id == HEADLINE:
            headline = (per_request / events, baseline, _to_json_us(fixture))
    if headline:
        verdict = "meets" if headline[0] < TARGET_US else "MISSES"
        print(f"\nsingle JSON delivery report ({HEADLINE}): {headline[0]:.1f} µs/event "
              f"(orjson.loads alone {headline[1]:.2f} µs; then to_json {headline[2]:.1f} µs) - "
              f"{verdict} the {TARGET_US:.0f} µs target")
    return 0


def _to_json_us(fixture: Fixture) -> float:
    """What serializing the fixture's events for Kafka costs, per event."""
    events = normalize(fixture.request())
    return _per_call_us(lambda: [event.to_json() for event in events]) / len(events)


def _loads_or_none(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # XML and form fixtures: the baseline is the cost of failing fast


if __name__ == "__main__":
    raise SystemExit(main())
