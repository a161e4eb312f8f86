"""Record helpers that consumers rely on to read what producers wrote."""

from __future__ import annotations

import pytest

from switchboard.records import named_by_source, source_of


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("ce_source", source_of("infobip", "acme").encode())], ("infobip", "acme")),
        ([("ce_id", b"x"), ("ce_source", b"/switchboard/bird/shop-eu")], ("bird", "shop-eu")),
        ([], ("", "")),  # an integrator's command without headers
        ([("ce_source", b"/elsewhere/infobip/acme")], ("", "")),
        ([("ce_source", b"/switchboard/infobip/")], ("", "")),
        ([("ce_source", b"/switchboard/infobip/acme/extra")], ("", "")),
        ([("ce_source", b"\xff\xfe")], ("", "")),
    ],
)
def test_named_by_source(headers: list[tuple[str, bytes]], expected: tuple[str, str]) -> None:
    assert named_by_source(headers) == expected
