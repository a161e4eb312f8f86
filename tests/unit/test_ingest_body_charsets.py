"""The charset a webhook's Content-Type names is the one its body is read in: RFC 7303 makes
it win over an XML declaration and over XML's UTF-8 default, as it already did for forms."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from ingest.app import create_app
from normalizers.base import NormalizeError, WebhookRequest
from normalizers.bodies import parse_xml, request_form_pairs
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from tests.fakes import KeepingProducer

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


# --- ISO-8859-1 is read as windows-1252 (WHATWG) ----------------------------------------------

FORM = "application/x-www-form-urlencoded"
LATIN1_LABELS = ["ISO-8859-1", "iso-8859-1", "latin1", "l1", "cp819", "iso_8859-1"]


def _form(body: bytes, content_type: str) -> WebhookRequest:
    return WebhookRequest(provider="ubiqio", account="a", body=body,
                          received_at=datetime(2026, 1, 1, tzinfo=UTC), raw_id="r",
                          content_type=content_type)


@pytest.mark.parametrize("label", LATIN1_LABELS)
def test_a_body_labelled_latin1_is_read_as_windows_1252(label: str) -> None:
    # 0x80-0x9F were read as the invisible C1 controls (U+0080..U+009F) strict Latin-1 has
    # there, so "5€ “hi”" from a gateway that says ISO-8859-1 and means windows-1252, as
    # nearly all do, arrived as "5\x80 \x93hi\x94".
    pairs = request_form_pairs(_form(b"m=5\x80+\x93hi\x94+caf\xe9&e=%80%85", f"{FORM}; "
                                     f"charset={label}"))
    assert pairs == [("m", "5€ “hi” café"), ("e", "€…")]
    xml = b"<r><m>5\x80 \x93hi\x94 caf\xe9</m></r>"
    assert parse_xml(xml, f"{XML}; charset={label}")["m"] == "5€ “hi” café"


def test_the_bytes_windows_1252_leaves_undefined_still_decode_as_in_latin1() -> None:
    # As the WHATWG has them: no body labelled Latin-1 that was read before is refused now.
    undefined = b"\x81\x8d\x8f\x90\x9d"
    [(_, value)] = request_form_pairs(_form(b"m=" + undefined, f"{FORM}; charset=latin1"))
    assert value == undefined.decode("latin-1")
    every_byte = bytes(b for b in range(0x20, 0x100) if b not in b"&=%+")
    [(_, value)] = request_form_pairs(_form(b"m=" + every_byte, f"{FORM}; charset=latin1"))
    assert len(value) == len(every_byte)


async def test_a_latin1_form_through_ingest_keeps_its_euro_sign() -> None:
    accounts = parse_accounts({"accounts": {
        "ub": {"provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["token-12345678"]}},
    }})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    body = b"fromNumber=38761111222&message=5\x80+caf\xe9"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        response = await client.post("/webhooks/ubiqio/ub", content=body, headers={
            "x-switchboard-token": "token-12345678",
            "content-type": f"{FORM}; charset=ISO-8859-1"})
    assert response.status_code == 200, response.text
    assert orjson.loads(producer.published[1].value)["text"] == "5€ café"
    raw = orjson.loads(producer.published[0].value)
    assert base64.b64decode(raw["body"]) == body  # kept as sent


@pytest.mark.parametrize("label", ["ISO-8859-1", "latin1", "l1"])
def test_xml_declared_latin1_is_read_as_windows_1252_too(label: str) -> None:
    # The same sender, saying Latin-1 in its XML declaration rather than its Content-Type.
    body = f"<?xml version='1.0' encoding='{label}'?><r><m>".encode() + \
        b"5\x80 \x93hi\x94 caf\xe9</m></r>"
    assert parse_xml(body, XML)["m"] == "5€ “hi” café"


def test_an_infobip_xml_report_is_read_in_its_content_types_charset() -> None:
    # Infobip's XML reports carry no declaration: only the Content-Type can say Latin-1.
    from normalizers import infobip
    body = (b"<DeliveryReports><results><result><messageId>m-1</messageId><to>41793026727</to>"
            b"<status><groupName>DELIVERED</groupName><id>5</id><name>DELIVERED_TO_HANDSET"
            b"</name><description>Livr\xe9</description></status></result></results>"
            b"</DeliveryReports>")
    request = WebhookRequest(provider="infobip", account="acme", body=body,
                             content_type="application/xml; charset=ISO-8859-1",
                             received_at=datetime(2026, 1, 1, tzinfo=UTC), raw_id="r-1")
    [event] = infobip.normalize(request)
    assert event.provider_status is not None
    assert event.provider_status.description == "Livré"
