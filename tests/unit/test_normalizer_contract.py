"""What every provider's normalizer must do, whatever its payloads: the shared suite.

New providers inherit these tests by being in the registry and having fixtures.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normalizers import NormalizeError, normalize
from normalizers.base import WebhookRequest
from switchboard.events import MessageEvent
from switchboard.providers import PROVIDERS
from tests.fixtures import ACCOUNT, RAW_ID, RECEIVED_AT, load_fixtures

CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "text/plain",
    "",
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _request(provider: str, body: bytes, content_type: str = "application/json",
             query: str = "", method: str = "POST") -> WebhookRequest:
    return WebhookRequest(provider=provider, account=ACCOUNT, body=body, received_at=RECEIVED_AT,
                          raw_id=RAW_ID, content_type=content_type, query=query, method=method)


def _events_or_typed_error(request: WebhookRequest) -> None:
    try:
        events = normalize(request)
    except NormalizeError as exc:
        assert exc.reason.strip(), "a NormalizeError must say why"
        assert exc.__cause__ is None, f"the normalizer crashed: {exc.__cause__!r}"
        return
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, MessageEvent)
        assert event.provider == request.provider and event.account == ACCOUNT
        MessageEvent.from_json(event.to_json())  # what we publish must round-trip


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"42", b"{", b"\xff\xfe", b"<a><b>"])
def test_bad_body_is_a_typed_error(provider: str, body: bytes) -> None:
    with pytest.raises(NormalizeError):
        normalize(_request(provider, body))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_has_fixtures_for_ignored_and_rejected_payloads(provider: str) -> None:
    fixtures = load_fixtures(provider)
    assert any(f.spec.get("events") == [] for f in fixtures), "no ignored-event fixture"
    assert any("error" in f.spec for f in fixtures), "no rejected-payload fixture"
    assert any(f.spec.get("events") for f in fixtures), "no fixture that yields events"


@pytest.mark.parametrize("fixture", [f for f in load_fixtures() if f.spec.get("events")],
                         ids=lambda f: f.id)
def test_same_report_twice_gives_same_ids(fixture: Any) -> None:
    first = [e.id for e in normalize(fixture.request(raw_id="first"))]
    again = [e.id for e in normalize(fixture.request(raw_id="retry"))]
    assert first == again
    assert len(set(first)) == len(first), "distinct reports in one request need distinct ids"


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from(CONTENT_TYPES),
       query=st.text(max_size=40))
def test_random_bytes_never_crash(provider: str, body: bytes, content_type: str,
                                  query: str) -> None:
    _events_or_typed_error(_request(provider, body, content_type, query))


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(value=JSON_VALUES)
def test_random_json_never_crashes(provider: str, value: Any) -> None:
    _events_or_typed_error(_request(provider, orjson.dumps(value)))


def _mutate(value: Any, path: list[int], replacement: Any) -> Any:
    """Replace the node that `path` picks (indices into children) with `replacement`."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return replacement
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = _mutate(value[key], path[1:], replacement)
    return copy


JSON_FIXTURES = [f for f in load_fixtures() if isinstance(f.spec["request"].get("body"),
                                                          (dict, list))]


@pytest.mark.parametrize("fixture", JSON_FIXTURES, ids=lambda f: f.id)
@FUZZ
@given(path=st.lists(st.integers(min_value=0, max_value=50), max_size=6), replacement=JSON_VALUES)
def test_mutated_fixtures_never_crash(fixture: Any, path: list[int], replacement: Any) -> None:
    body = _mutate(fixture.spec["request"]["body"], path, replacement)
    request = fixture.request()
    _events_or_typed_error(_request(request.provider, orjson.dumps(body), request.content_type,
                                    request.query, request.method))


# Odd but valid values providers do send in places their docs allow them: absent/empty
# (documented optional fields), numbers as strings and strings as numbers, emoji and long
# texts, timestamps with offsets and fractions of odd length, unix milliseconds.
ODD_VALUES: list[Any] = [
    None, "", [], {}, "12", 12, 1.5, "😀 \u200d👍🏽", "é" * 5000,
    "2024-01-07T20:06:09.1234567+05:30", "2024-01-07t14:36:09z", 1704638169123,
]


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node's path (keys and indices) in a JSON value, the root first."""
    paths = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            paths.extend(_nodes(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths.extend(_nodes(child, (*path, index)))
    return paths


def _replaced(value: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    if not path:
        return replacement
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], replacement)
    return copy


@pytest.mark.parametrize("fixture", JSON_FIXTURES, ids=lambda f: f.id)
def test_every_field_of_a_fixture_may_take_odd_values(fixture: Any) -> None:
    """Each node of the fixture, one at a time, set to each odd value: events or a typed error,
    never a crash (a bounded sweep: the random test above rarely reaches a nested key with a
    timestamp or a long text)."""
    body = fixture.spec["request"]["body"]
    request = fixture.request()
    for path in _nodes(body):
        for value in ODD_VALUES:
            _events_or_typed_error(_request(
                request.provider, orjson.dumps(_replaced(body, path, value)),
                request.content_type, request.query, request.method))
