"""The charset a webhook's Content-Type names is the one its body is read in: RFC 7303 makes
it win over an XML declaration and over XML's UTF-8 default, as it already did for forms."""

from __future__ import annotations

import pytest

from normalizers.base import NormalizeError
from normalizers.bodies import parse_xml

XML = "application/xml"


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        # No declaration: the charset was ignored and the Latin-1 byte refused as not UTF-8.
        (b"<r><m>caf\xe9</m></r>", f"{XML}; charset=ISO-8859-1", "café"),
        (b"<r><m>caf\xe9</m></r>", 'text/xml;Charset="iso-8859-1"', "café"),
        # A declaration that says otherwise: the Content-Type wins.
        (b'<?xml version="1.0" encoding="UTF-8"?><r><m>5\x80 caf\xe9</m></r>',
         f"{XML}; charset=windows-1252", "5€ café"),
        (b"<?xml version='1.0' encoding='ISO-8859-1'?><r><m>caf\xc3\xa9</m></r>",
         f"{XML}; charset=utf-8", "café"),
        # A byte order mark is still passed over.
        (b"\xef\xbb\xbf<r><m>caf\xc3\xa9</m></r>", f"{XML}; charset=UTF-8", "café"),
        # Without a charset, the declaration says, else UTF-8: as before.
        (b"<?xml version='1.0' encoding='ISO-8859-1'?><r><m>caf\xe9</m></r>", XML, "café"),
        (b"<r><m>caf\xc3\xa9</m></r>", f"{XML}; boundary=x", "café"),
        (b"<r><m>caf\xc3\xa9</m></r>", "", "café"),
    ],
)
def test_xml_is_read_in_the_charset_its_content_type_names(
        body: bytes, content_type: str, text: str) -> None:
    assert parse_xml(body, content_type)["m"] == text


@pytest.mark.parametrize(
    ("charset", "reason"),
    [
        ("x-klingon", "charset 'x-klingon' is not a known text encoding; send UTF-8"),
        ("rot13", "charset 'rot13' is not a known text encoding"),
        ("utf-16", "charset 'utf-16' is not supported for XML"),
        ("cp037", "charset 'cp037' is not supported for XML"),
        ("a b", "charset 'a b' is not a charset name"),
    ],
)
def test_xml_in_a_charset_that_cannot_be_read_is_refused_with_its_name(
        charset: str, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        parse_xml(b"<r><m>hi</m></r>", f"{XML}; charset={charset}")
    assert caught.value.reason.startswith(reason)
    assert caught.value.__cause__ is None  # a refusal, not a crash the ingest would log


def test_xml_that_is_not_in_its_declared_charset_is_refused_with_the_charset() -> None:
    for body, charset, reason in ((b"<r>caf\xe9</r>", "utf-8", "XML body is not UTF-8"),
                                  (b"<r>\x81</r>", "windows-1252",
                                   "XML body is not 'windows-1252'")):
        with pytest.raises(NormalizeError) as caught:
            parse_xml(body, f"{XML}; charset={charset}")
        assert caught.value.reason == reason
