"""One table-driven test over every provider's fixture files."""

from __future__ import annotations

import pytest

from normalizers import NormalizeError, normalize
from tests.fixtures import Fixture, comparable, load_fixtures

FIXTURES = load_fixtures()


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.id for f in FIXTURES])
def test_fixture_normalizes_as_expected(fixture: Fixture) -> None:
    spec = fixture.spec
    assert ("events" in spec) != ("error" in spec), "a fixture expects events or an error"
    if "error" in spec:
        with pytest.raises(NormalizeError) as caught:
            normalize(fixture.request())
        assert spec["error"].lower() in caught.value.reason.lower()
        return
    events = [event.to_dict() for event in normalize(fixture.request())]
    expected = spec["events"]
    assert len(events) == len(expected)
    for got, want in zip(events, expected, strict=True):
        assert comparable(got, keep_id="id" in want) == comparable(want, keep_id=True)
