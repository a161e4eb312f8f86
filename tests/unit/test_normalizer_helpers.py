from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from normalizers.base import NormalizeError, WebhookRequest
from normalizers.bodies import (
    parse_form,
    parse_json_object,
    parse_xml,
    query_text,
    request_form_pairs,
)
from normalizers.channels import channel
from normalizers.fields import geo_uri, int_field, place_caption, text_field
from normalizers.prices import price
from normalizers.times import parse_time
from switchboard.addresses import address


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-11-09T16:00:00.000+0000", datetime(2019, 11, 9, 16, tzinfo=UTC)),
        ("2019-11-09T18:00:00.000+0200", datetime(2019, 11, 9, 16, tzinfo=UTC)),
        ("2023-07-28T17:57:12+00:00", datetime(2023, 7, 28, 17, 57, 12, tzinfo=UTC)),
        ("2024-01-07T14:36:09.266Z", datetime(2024, 1, 7, 14, 36, 9, 266000, tzinfo=UTC)),
        ("2015-04-12 13:00:19", datetime(2015, 4, 12, 13, 0, 19, tzinfo=UTC)),
        ("20230727004929", datetime(2023, 7, 27, 0, 49, 29, tzinfo=UTC)),
        ("1690418969", datetime(2023, 7, 27, 0, 49, 29, tzinfo=UTC)),
        (1690418969000, datetime(2023, 7, 27, 0, 49, 29, tzinfo=UTC)),
        (" 1690418969 ", datetime(2023, 7, 27, 0, 49, 29, tzinfo=UTC)),
        ("20230727", datetime(2023, 7, 27, tzinfo=UTC)),  # ISO 8601 basic date
        # RFC 3339 (5.6): "T" and "Z" may be lower case
        ("2024-01-07T14:36:09.266z", datetime(2024, 1, 7, 14, 36, 9, 266000, tzinfo=UTC)),
        ("2024-01-07t14:36:09z", datetime(2024, 1, 7, 14, 36, 9, tzinfo=UTC)),
        # fractions of any length: beyond microseconds they are cut, not rounded
        ("2024-01-07T14:36:09.1Z", datetime(2024, 1, 7, 14, 36, 9, 100000, tzinfo=UTC)),
        ("2024-01-07T20:06:09.1234567+05:30",
         datetime(2024, 1, 7, 14, 36, 9, 123456, tzinfo=UTC)),
        ("2024-01-07T14:36:09.123456789Z", datetime(2024, 1, 7, 14, 36, 9, 123456, tzinfo=UTC)),
        ("9999-12-31T23:59:59+00:00", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("9999-12-31T23:59:59+01:00", datetime(9999, 12, 31, 22, 59, 59, tzinfo=UTC)),
        (None, None),
    ],
)
def test_parse_time_accepts_provider_formats(value: object, expected: datetime | None) -> None:
    assert parse_time(value) == expected


_LEAP_SECOND_END = datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2016-12-31T23:59:60Z",
        "2016-12-31t23:59:60z",
        "2016-12-31T23:59:60.5Z",
        "2016-12-31T23:59:60.999999999Z",
        "2017-01-01T00:59:60+01:00",  # the same leap second in another offset
        "2016-12-31T18:29:60-05:30",
        "2017-01-01T00:59:60.000+0100",  # Infobip's form
        "2016-12-31 23:59:60",
        "2016-12-31 23:59:60+0000",
        "20161231235960",  # compact YYYYMMDDhhmmss
    ],
)
def test_parse_time_reads_a_leap_second_as_its_last_microsecond(value: str) -> None:
    """RFC 3339 allows second 60 (a leap second), datetime does not: it is read as the last
    microsecond before the next minute, keeping the day and the order of earlier times."""
    assert parse_time(value) == _LEAP_SECOND_END


@pytest.mark.parametrize("value", ["2016-12-31T23:59:61Z", "2016-12-31T23:60:00Z",
                                   "2016-12-31T24:59:60Z", "2016-12-31T23:59:60x"])
def test_parse_time_reads_second_60_only(value: str) -> None:
    with pytest.raises(NormalizeError, match="not in a known format"):
        parse_time(value)


@pytest.mark.parametrize("value", ["yesterday", "2019-13-45T00:00:00Z", True, [1]])
def test_parse_time_rejects_nonsense_with_a_reason(value: object) -> None:
    with pytest.raises(NormalizeError, match="time"):
        parse_time(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # In UTC these are in year 10000 and year 0: astimezone overflowed.
        ("9999-12-31T23:59:59-01:00", "out of range"),
        ("0001-01-01T00:00:00+01:00", "out of range"),
        ("9999-12-31 23:59:59-0100", "out of range"),
        # Unicode digits are not digits of a time (float() refused "²²²²²²²²²²"; Arabic-Indic
        # digits were read as a unix time).
        ("²²²²²²²²²²", "not in a known format"),
        ("²²²²²²²²²²²²²", "not in a known format"),
        ("٣٣٣٣٣٣٣٣٣٣", "not in a known format"),
        ("٢٠٢٣٠٧٢٧٠٠٤٩٢٩", "not in a known format"),
        # Digit runs that are neither unix times (10 or 13 digits) nor YYYYMMDDhhmmss (14):
        # strptime read "999999999" as 9999-09-09T09:09:09Z.
        ("999999999", "not in a known format"),
        ("99999999999", "not in a known format"),
        ("99999999999999", "not in a known format"),  # 14 digits, but month 99
        ("20231327004929", "not in a known format"),  # month 13
        ("20230727004961", "not in a known format"),
        pytest.param(10**400, "out of range", id="int-beyond-float"),
        (1e300, "out of range"),
    ],
)
def test_parse_time_out_of_range_or_unknown_is_an_error(value: object, reason: str) -> None:
    with pytest.raises(NormalizeError, match=reason):
        parse_time(value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("41793026727", "+41793026727"),
        ("+41 79 302 67 27", "+41793026727"),
        ("56263", "56263"),  # a short code is not E.164
        ("0041793026727", "+41793026727"),  # 00 is the international prefix
        ("0911234567", "0911234567"),  # national format: the country is unknown
        ("InfoSMS", "InfoSMS"),
        ("urn:mbid:AQAAY6xH", "urn:mbid:AQAAY6xH"),
        ("", None),
        (None, None),
    ],
)
def test_address_makes_phone_numbers_e164(raw: str | None, expected: str | None) -> None:
    assert address(raw, "sms") == expected


@pytest.mark.parametrize(
    ("raw", "channel_name", "expected"),
    [
        # Phone channels: the end user is a phone number.
        ("41793026727", "sms", "+41793026727"),
        ("41793026727", "mms", "+41793026727"),
        ("41793026727", "whatsapp", "+41793026727"),
        ("41793026727", "rcs", "+41793026727"),
        ("41793026727", "viber", "+41793026727"),
        ("41793026727", "voice", "+41793026727"),
        ("41793026727", "kakao", "+41793026727"),
        ("41793026727", "zalo", "+41793026727"),
        ("41793026727", "unknown", "+41793026727"),  # the provider did not say
        ("41793026727", None, "+41793026727"),
        # A command's channel is a provider label, in any case.
        ("41793026727", "WHATSAPP", "+41793026727"),
        ("41793026727", "VIBER_BM", "+41793026727"),
        ("41793026727", "Branded Text", "+41793026727"),
        # Platform ids: a Telegram chat id, Messenger/Instagram ids, are no phone numbers.
        ("123456789", "telegram", "123456789"),
        ("1033247360", "telegram", "1033247360"),
        ("1033247360", "TELEGRAM", "1033247360"),
        ("123456789012345", "messenger", "123456789012345"),
        ("123456789012345", "instagram", "123456789012345"),
        ("12345678", "line", "12345678"),
        ("12345678", "in-app", "12345678"),
        ("12345678", "some-new-thing", "12345678"),
        (" 1033247360 ", "telegram", "1033247360"),  # stripped all the same
        ("", "telegram", None),
    ],
)
def test_address_is_a_phone_number_only_on_phone_channels(
        raw: str, channel_name: str | None, expected: str | None) -> None:
    assert address(raw, channel_name) == expected


def test_channel_names_are_normalized() -> None:
    assert channel("VIBER_BM") == "viber"
    assert channel("INSTAGRAM_DM") == "instagram"
    assert channel("SMS") == "sms"
    assert channel(None) == "unknown"
    assert channel("Some New Thing") == "some-new-thing"


def test_xml_is_parsed_without_entity_expansion() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;&a;</x>'
    with pytest.raises(NormalizeError, match="XML"):
        parse_xml(bomb)
    parsed = parse_xml(b"<r><results><m>1</m></results><results><m>2</m></results></r>")
    assert parsed == {"_root": "r", "results": [{"m": "1"}, {"m": "2"}]}


def test_form_keeps_last_repeated_value() -> None:
    assert parse_form(b"id=1&id=2&body=Hi+there") == {"id": "2", "body": "Hi there"}


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.0065", "eur", ("0.0065", "EUR")),
        (0.01, "EUR", ("0.01", "EUR")),
        (0, "EUR", ("0", "EUR")),
        ("1e3", "EUR", ("1000", "EUR")),
        ("12345678901234567890.12345678901234567890", "EUR",  # 40 digits: the most kept
         ("12345678901234567890.12345678901234567890", "EUR")),
        ("1e-30", "EUR", ("0." + "0" * 29 + "1", "EUR")),
        (None, "EUR", None),
        ("", "EUR", None),
        ("0.01", "", None),
    ],
)
def test_price_reads_decimal_amounts(amount: Any, currency: Any,
                                     expected: tuple[str, str] | None) -> None:
    result = price(amount, currency)
    if expected is None:
        assert result is None
    else:
        assert result is not None
        assert (result.model_dump(mode="json")["amount"], result.currency) == expected
        assert result.amount == Decimal(expected[0])


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("1e999999999999", "out of range"),  # would expand to a terabyte of zeros
        ("1e5000000", "out of range"),  # a 5 MB record
        ("1e-999999999", "out of range"),
        ("1e31", "out of range"),
        ("1e-31", "out of range"),
        (1e300, "out of range"),
        ("9" * 41, "out of range"),
        ("0." + "1" * 41, "out of range"),
        ("abc", "not a decimal amount"),
        ("NaN", "not a decimal amount"),
        ("Infinity", "not a decimal amount"),
        ("9" * 5000 + "x", "not a decimal amount"),
    ],
)
def test_price_out_of_range_or_not_decimal_is_an_error(amount: Any, reason: str) -> None:
    with pytest.raises(NormalizeError, match=reason) as caught:
        price(amount, "EUR")
    assert len(caught.value.reason) < 200, "the reason must not echo a huge amount"


@pytest.mark.parametrize(
    "encoding",
    [
        # expat reads single-byte encodings only: ValueError("multi-byte encodings are not
        # supported")
        "utf-16-le", "utf-32", "euc-jp", "shift_jis", "big5", "gb18030", "utf-7",
        # codecs that are not text encodings, or unknown names: LookupError
        "rot13", "hex", "base64", "zlib", "uu", "mbcs", "x-mac-roman", "no-such-encoding",
        # codecs that fail on XML: UnicodeError
        "idna", "punycode",
    ],
)
def test_xml_in_an_unreadable_encoding_is_an_error(encoding: str) -> None:
    body = (f'<?xml version="1.0" encoding="{encoding}"?>'
            "<results><result><messageId>m</messageId></result></results>").encode()
    with pytest.raises(NormalizeError, match=f"XML declares encoding '{encoding}'"):
        parse_xml(body)


@pytest.mark.parametrize("encoding", ["UTF-8", "ISO-8859-1", "windows-1252", "us-ascii"])
def test_xml_in_a_readable_encoding_is_parsed(encoding: str) -> None:
    body = f'<?xml version="1.0" encoding="{encoding}"?><r><m>caf\xe9</m></r>'.encode(encoding,
                                                                                    "replace")
    assert parse_xml(body)["m"] in ("caf\xe9", "caf?")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"),
        (103, "103"),
        (103.0, "103"),  # an integral float is its integer: Bird's opt-out code 103
        (-5.0, "-5"),
        (7208.0, "7208"),
        (1.5, "1.5"),
        (2**53 - 1.0, str(2**53 - 1)),
        (18446744073709551615, "18446744073709551615"),  # orjson's largest int
        (None, None),
    ],
)
def test_text_field_writes_numbers_as_given(value: Any, expected: str | None) -> None:
    assert text_field({"a": value}, "a") == expected


@pytest.mark.parametrize(
    "value",
    [
        float(2**53),
        1.8446744073709552e19,  # what orjson gives for 18446744073709551617 (and ...618)
        -1e20,
        1e300,
    ],
)
def test_text_field_refuses_floats_too_large_to_be_exact(value: float) -> None:
    with pytest.raises(NormalizeError, match="too large to be read exactly"):
        text_field({"messageId": value}, "messageId")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        ("3", 3),
        (" 2 ", 2),
        (3.0, 3),
        (0, 0),
        (10_000, 10_000),
        ("0000000000000000000000000007", 7),
        # Out of range: no segment count, dropped as a negative count always was.
        (-1, None),
        ("-3", None),
        (10_001, None),
        (1e308, None),  # was a 309-digit integer in the event
        ("9" * 4000, None),  # was a 4000-digit integer: orjson.loads refused the record
        ("9" * 5000, None),
        (2**64 - 1, None),
        (None, None),
    ],
)
def test_int_field_reads_counts(value: Any, expected: int | None) -> None:
    assert int_field({"segments": value}, "segments") == expected


@pytest.mark.parametrize(
    "value",
    [True, False, 1.5, float("inf"), float("nan"), "1.5", "abc", "1_000", "²", "١٢", [1], {}],
)
def test_int_field_refuses_what_is_not_an_integer(value: Any) -> None:
    with pytest.raises(NormalizeError, match="should be an integer"):
        int_field({"segments": value}, "segments")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a=1&b=caf%C3%A9", "a=1&b=caf%C3%A9"),
        # Raw UTF-8 bytes of "café", as ingest hands them on (ASGI bytes decoded as Latin-1).
        ("b=caf\u00c3\u00a9", "b=café"),
        ("b=caf\u00e9\u20ac", "b=caf\u00e9\u20ac"),  # beyond Latin-1: typed text already
    ],
)
def test_query_text_is_the_utf8_text_of_the_query_bytes(query: str, expected: str) -> None:
    assert query_text(query) == expected


def test_query_text_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(NormalizeError, match="query string is not UTF-8"):
        query_text("b=caf\u00e9")  # the raw Latin-1 byte 0xE9


def _as_asgi_gives_it(query: bytes) -> str:
    return query.decode("latin-1")


def _with_query(query: str) -> WebhookRequest:
    return WebhookRequest(provider="bird", account="a", body=b"",
                          received_at=datetime(2026, 1, 2, tzinfo=UTC), raw_id="r", query=query)


@pytest.mark.parametrize(
    ("query", "fields", "pairs"),
    [
        (_as_asgi_gives_it("b=café".encode()), {"b": "café"}, [("b", "café")]),
        ("b=caf%C3%A9", {"b": "café"}, [("b", "café")]),
        (_as_asgi_gives_it("caf%C3%A9=1&n=€".encode()), {"café": "1", "n": "€"},
         [("café", "1"), ("n", "€")]),
        # A repeated key keeps its last value in the fields, as parse_form does; pairs keep all.
        ("id=1&id=2&body=Hi+there", {"id": "2", "body": "Hi there"},
         [("id", "1"), ("id", "2"), ("body", "Hi there")]),
        ("", {}, []),
    ],
)
def test_query_fields_are_the_utf8_text_of_the_query(query: str, fields: dict[str, str],
                                                      pairs: list[tuple[str, str]]) -> None:
    request = _with_query(query)
    assert request.query_fields == fields
    assert request.query_pairs == pairs
    # What the normalizers called themselves before the property.
    assert request.query_fields == parse_form(query_text(query))


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (_as_asgi_gives_it(b"b=caf\xe9"), "query string is not UTF-8"),
        ("b=caf%E9", "form field 'b' has %-escapes that are not UTF-8"),
    ],
)
def test_query_fields_refuse_a_query_that_is_not_utf8(query: str, reason: str) -> None:
    request = _with_query(query)
    for read in (lambda: request.query_fields, lambda: request.query_pairs):
        with pytest.raises(NormalizeError) as caught:
            read()
        assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("body=caf%C3%A9", {"body": "café"}),
        (b"body=caf\xc3\xa9", {"body": "café"}),
        ("body=%zz", {"body": "%zz"}),  # not an escape: kept, as parse_qsl does
    ],
)
def test_form_decodes_utf8(form: str | bytes, expected: dict[str, str]) -> None:
    assert parse_form(form) == expected


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ("body=caf%E9", "form field 'body' has %-escapes that are not UTF-8: 'caf%E9'"),
        ("caf%E9=x", "form field name has %-escapes that are not UTF-8: 'caf%E9'"),
        (b"body=caf%E9", "form field 'body' has %-escapes that are not UTF-8"),
        ("a=%C3", "form field 'a' has %-escapes that are not UTF-8"),
    ],
)
def test_form_refuses_escapes_that_are_not_utf8(form: str | bytes, reason: str) -> None:
    # Was U+FFFD in place of what was sent; a form body that is not UTF-8 was already an error.
    with pytest.raises(NormalizeError) as caught:
        parse_form(form)
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"text": "caf\xe9"}', "body is not UTF-8 (byte 0xE9 at offset 13)"),  # Latin-1
    ('{"text": "hi"}'.encode("utf-16"), "body is not UTF-8 (byte 0xFF at offset 0)"),
    (b'{"text": "hi"}\x80', "body is not UTF-8 (byte 0x80 at offset 14)"),
])
def test_a_json_body_that_is_not_utf8_says_so_and_where(body: bytes, reason: str) -> None:
    # orjson's own reason was "str is not valid UTF-8: surrogates not allowed: line 1 column 1
    # (char 0)" for each: no surrogate, and not where the byte is.
    with pytest.raises(NormalizeError) as caught:
        parse_json_object(body)
    assert caught.value.reason == f"{reason}; JSON must be UTF-8 (RFC 8259), whatever charset " \
        "the content type names"


def _form(body: bytes, content_type: str) -> WebhookRequest:
    return WebhookRequest(provider="ubiqio", account="a", body=body,
                          received_at=datetime(2026, 1, 1, tzinfo=UTC), raw_id="r",
                          content_type=content_type)


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        # Legacy SMS gateways send Latin-1 and say so: bytes and %-escapes alike.
        (b"body=caf\xe9&n%E9=%E9t%E9", f"{FORM}; charset=iso-8859-1",
         [("body", "café"), ("né", "été")]),
        (b"body=caf\xe9", f"{FORM};Charset=\"ISO-8859-1\"", [("body", "café")]),
        (b"body=5%80+caf\xe9", f"{FORM}; charset=windows-1252", [("body", "5€ café")]),
        (b"body=caf%C3%A9", f"{FORM}; charset=UTF-8", [("body", "café")]),
        (b"body=caf%C3%A9", f"{FORM}; boundary=x", [("body", "café")]),  # no charset: UTF-8
        (b"body=caf%C3%A9", FORM, [("body", "café")]),
    ],
)
def test_a_form_is_read_in_the_charset_its_content_type_names(
        body: bytes, content_type: str, expected: list[tuple[str, str]]) -> None:
    # Was "form body is not UTF-8" (or "%-escapes that are not UTF-8") whatever the charset.
    assert request_form_pairs(_form(body, content_type)) == expected


@pytest.mark.parametrize(
    ("charset", "reason"),
    [
        ("klingon-8", "charset 'klingon-8' is not a known text encoding; send UTF-8"),
        ("rot13", "charset 'rot13' is not a known text encoding"),  # a codec, not a charset
        ("base64", "charset 'base64' is not a known text encoding"),
        ("utf-16", "charset 'utf-16' is not supported for a form"),  # `=` is no longer b"="
        ("cp037", "charset 'cp037' is not supported for a form"),  # EBCDIC
        ("utf-7", "charset 'utf-7' is not supported for a form"),
        ("idna", "charset 'idna' is not supported for a form"),  # Python codecs, no charsets
        ("unicode_escape", "charset 'unicode_escape' is not supported for a form"),
        ("", "charset '' is not a charset name"),
        ("a b", "charset 'a b' is not a charset name"),
        ("x" * 41, "is not a charset name"),
    ],
)
def test_a_form_in_a_charset_that_cannot_be_read_is_refused_with_its_name(
        charset: str, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        request_form_pairs(_form(b"body=hi", f"{FORM}; charset={charset}"))
    assert reason in caught.value.reason
    assert caught.value.__cause__ is None  # a refusal, not a crash the ingest would log


def test_a_form_that_is_not_in_its_declared_charset_is_refused_with_the_charset() -> None:
    # windows-1252 leaves 0x81 undefined.
    for body, reason in ((b"body=\x81", "form body is not 'windows-1252'"),
                         (b"body=%81", "form field 'body' has %-escapes that are not "
                                       "'windows-1252'")):
        with pytest.raises(NormalizeError) as caught:
            request_form_pairs(_form(body, f"{FORM}; charset=windows-1252"))
        assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("place", "expected"),
    [
        ({"name": "Joe's Cafe", "address": "5 Main St"}, "Joe's Cafe\n5 Main St"),
        ({"name": "Joe's Cafe"}, "Joe's Cafe"),
        ({"address": "5 Main St"}, "5 Main St"),
        ({"name": " Joe's Cafe ", "address": "  "}, "Joe's Cafe"),  # blank is absent
        ({"name": "", "address": "5 Main St"}, "5 Main St"),
        ({"name": "5 Main St", "address": "5 Main St"}, "5 Main St"),  # the same text: once
        ({"name": "5 Main St ", "address": " 5 Main St"}, "5 Main St"),
        ({"latitude": 1.5, "longitude": 2}, None),
        ({"name": None, "address": None}, None),
        ({"name": 5, "address": {"street": "Main"}}, None),  # not text: absent, no error
        ("Joe's Cafe", None),  # no object: no caption, no error
        (None, None),
    ],
)
def test_place_caption_is_name_and_address_one_per_line(place: Any, expected: str | None) -> None:
    assert place_caption(place, "name", "address") == expected


def test_place_caption_reads_the_keys_it_is_given() -> None:
    """Each provider names the two its own way (Bird: `label`)."""
    place = {"label": "Amsterdam", "address": "Dam 1", "name": "not this one"}
    assert place_caption(place, "label", "address") == "Amsterdam\nDam 1"


@pytest.mark.parametrize(
    ("latitude", "longitude", "expected"),
    [
        (52.3702, 4.8952, "geo:52.3702,4.8952"),
        (45, -15, "geo:45,-15"),
        (1.0, -0.0, "geo:1.0,-0.0"),
        ("52.3702", "4.8952", "geo:52.3702,4.8952"),  # Webex and XML bodies: decimal strings
        (" 52.3702 ", "\t-4.8952\n", "geo:52.3702,-4.8952"),
        ("+52.37", "+4", "geo:52.37,4"),  # RFC 5870 has no "+"
        (90, -180, "geo:90,-180"),
        ("-90.0", "180.0", "geo:-90.0,180.0"),
        (0.00001, -0.00005, "geo:0.00001,-0.00005"),  # not 1e-05: no exponent in a geo: URI
        (90.5, 0, None),  # out of range: no location rather than an invalid URI
        (0, 180.01, None),
        ("-91", "0", None),
        ("0", "1000", None),
        ("52,37", "4,89", None),  # a decimal comma (or a pair in one field) is not read
        ("1e1", "2", None),
        ("52.", "4", None),
        ("", "4", None),
        (True, 4, None),
        (None, 4, None),
        (52.37, None, None),
        (float("nan"), 4, None),
        (float("inf"), 4, None),
        ({"deg": 52}, 4, None),
    ],
)
def test_geo_uri_reads_numbers_and_decimal_strings_in_range(
        latitude: Any, longitude: Any, expected: str | None) -> None:
    assert geo_uri({"latitude": latitude, "longitude": longitude}) == expected
