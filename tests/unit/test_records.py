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


@pytest.mark.parametrize("account", ["acme shop", "50%-off", "café", "a?b#c"])
def test_a_source_is_a_uri_reference_for_any_account_name(account: str) -> None:
    # CloudEvents requires `source` to be a URI reference: a name with a space or '%' made
    # one a consumer's CloudEvents SDK refuses; consumers get the name back unchanged.
    source = source_of("ubiqio", account)
    assert source.isascii() and " " not in source and "?" not in source
    assert named_by_source([("ce_source", source.encode())]) == ("ubiqio", account)
