"""Infobip's product names for a channel (KAKAO_SANGDAM, LINE_OA, ...) are that channel."""

from __future__ import annotations

import pytest

from normalizers._infobip_fields import report_channel


@pytest.mark.parametrize(("label", "expected"), [
    ("KAKAO_SANGDAM", "kakao"),
    ("kakao_alim", "kakao"),
    (" Kakao_Chingu ", "kakao"),  # spelt and spaced as a hand-written URL label may be
    ("LINE_OA", "line"),
    ("line_oa\n", "line"),
    ("ZALO_ZNS", "zalo"),
    ("ZALO_FOLLOWER", "zalo"),
    ("TIKTOK_BM", "tiktok"),
    ("LINE_ON", "line"),  # the table's own labels are unchanged
    ("SMS", "sms"),
])
def test_a_product_label_is_its_channel(label: str, expected: str) -> None:
    assert report_channel({"integrationType": label}, None) == expected
    assert report_channel({}, label) == expected  # the URL's ?channel= label


def test_a_report_without_a_label_keeps_its_default() -> None:
    assert report_channel({}, None) == "unknown"
    assert report_channel({"to": "urn:mbid:AQAAY6xH"}, "sms") == "apple"
