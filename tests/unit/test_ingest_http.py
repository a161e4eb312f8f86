"""How ingest answers requests as real HTTP clients and servers shape them: compressed
bodies, byte order marks, whitespace around header values, and refusals of the router."""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from ingest.app import create_app
from ingest.signing import sign
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from switchboard.topics import DEAD_LETTER, RAW
from tests.fakes import KeepingProducer
from tests.unit.fakes import served

PASSWORD = "password-123"
BASIC = {"authorization": "Basic " + base64.b64encode(f"u:{PASSWORD}".encode()).decode()}
JSON = {"content-type": "application/json"}
DELIVERY = (b'{"results": [{"messageId": "m-1", "to": "41793026727", "doneAt": '
            b'"2026-02-06T14:18:31.797+0000", "status": {"groupName": "DELIVERED", '
            b'"name": "DELIVERED_TO_HANDSET"}}]}')


STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-secret").decode()


def _app() -> tuple[Any, KeepingProducer]:
    accounts = parse_accounts({"accounts": {
        "acme": {"provider": "infobip",
                 "auth": {"scheme": "basic", "username": "u", "secrets": [PASSWORD]}},
        "bs": {"provider": "bird",
               "auth": {"scheme": "bird-signature", "secrets": ["signing-key-123"]}},
        "ub": {"provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["token-12345678"]}},
        "sw": {"provider": "bird",
               "auth": {"scheme": "standard-webhooks", "secrets": [STANDARD_SECRET]}},
    }})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    return app, producer


async def _post(app: Any, path: str, headers: dict[str, str], body: bytes,
                method: str = "POST") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        return await client.request(method, path, headers=headers, content=body)


def _topics(producer: KeepingProducer) -> list[str]:
    return [record.topic for record in producer.published]


# --- Content-Encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP"])
async def test_a_compressed_body_is_refused_as_such_and_kept(encoding: str) -> None:
    # A gzip body was parsed as if it were JSON: a 400 "body is not valid JSON: str is not
    # valid UTF-8: surrogates not allowed", which sends whoever reads it looking for a broken
    # payload rather than at the provider's (or proxy's) compression setting.
    app, producer = _app()
    response = await _post(app, "/webhooks/infobip/acme",
                           {**BASIC, **JSON, "content-encoding": encoding},
                           gzip.compress(DELIVERY))
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_content_encoding"
    assert encoding in response.json()["message"]
    assert _topics(producer) == [RAW.name, DEAD_LETTER.name]
    # Kept with the request, so that a replay sees why it cannot be read either.
    raw = orjson.loads(producer.published[0].value)
    assert raw["headers"]["content-encoding"] == encoding


async def test_an_identity_content_encoding_is_read_as_it_is() -> None:
    app, producer = _app()
    response = await _post(app, "/webhooks/infobip/acme",
                           {**BASIC, **JSON, "content-encoding": "identity"}, DELIVERY)
    assert response.status_code == 200
    assert len(_topics(producer)) == 2 and DEAD_LETTER.name not in _topics(producer)


# --- a byte order mark before JSON -----------------------------------------------------------


async def test_a_json_body_after_a_utf8_byte_order_mark_is_read() -> None:
    # orjson refuses a leading BOM, and the request was dead-lettered as "UTF-8 byte order mark
    # (BOM) is not supported". RFC 8259 lets a parser ignore one, and senders on .NET or
    # PowerShell write one: every webhook of such a sender would have been refused.
    app, producer = _app()
    response = await _post(app, "/webhooks/infobip/acme", {**BASIC, **JSON},
                           b"\xef\xbb\xbf" + DELIVERY)
    assert response.status_code == 200
    assert _topics(producer) == [RAW.name, "switchboard.message.status.v1"]
    # The raw record keeps the body byte-exact, BOM included.
    assert orjson.loads(producer.published[0].value)["body"].startswith("\ufeff")


async def test_a_byte_order_mark_alone_is_still_an_empty_body() -> None:
    app, _ = _app()
    response = await _post(app, "/webhooks/infobip/acme", {**BASIC, **JSON}, b"\xef\xbb\xbf")
    assert response.status_code == 400
    assert "empty body" in response.json()["message"]


async def test_only_one_byte_order_mark_is_passed_over() -> None:
    app, _ = _app()
    response = await _post(app, "/webhooks/infobip/acme", {**BASIC, **JSON},
                           b"\xef\xbb\xbf" * 100_000 + DELIVERY)
    assert response.status_code == 400
    assert "byte order mark" in response.json()["message"]


# --- whitespace around header values ---------------------------------------------------------

BIRD_INBOUND = (b'{"service":"channels","event":"sms.inbound","payload":{"id":"m1",'
                b'"sender":{"contact":{"identifierValue":"+31612345678"}},'
                b'"body":{"type":"text","text":{"text":"hi"}}}}')
UBIQIO_INBOUND = (b'{"fromNumber": "38761111222", "toNumber": "38733000111", "message": "hi", '
                  b'"messageId": "u-1", "receivedAt": "2025-07-03T12:00:00Z"}')


def _padded(headers: dict[str, str]) -> dict[str, str]:
    return {name: f" {value} \t" for name, value in headers.items()}


@pytest.mark.parametrize(("path", "scheme", "secret", "body"), [
    ("/webhooks/infobip/acme", "basic", PASSWORD, DELIVERY),
    ("/webhooks/bird/bs", "bird-signature", "signing-key-123", BIRD_INBOUND),
    ("/webhooks/bird/sw", "standard-webhooks", STANDARD_SECRET, BIRD_INBOUND),
    ("/webhooks/ubiqio/ub", "token", "token-12345678", UBIQIO_INBOUND),
])
async def test_whitespace_around_a_credential_header_is_not_part_of_it(
        path: str, scheme: str, secret: str, body: bytes) -> None:
    # RFC 9110 5.5: whitespace around a field value is not part of it. uvicorn's h11 parser
    # strips it, its httptools parser (the one `uvicorn[standard]` runs) keeps the trailing
    # part: the same request was authenticated by one and refused 401 by the other.
    app, producer = _app()
    headers = sign(scheme, secret, url=f"https://hooks.example{path}", body=body, username="u")
    response = await _post(app, path, {**_padded(headers), **JSON}, body)
    assert response.status_code == 200, response.text
    assert producer.published


# --- a credential header sent twice ----------------------------------------------------------


@pytest.mark.parametrize(("path", "scheme", "secret", "body", "repeated"), [
    ("/webhooks/infobip/acme", "basic", PASSWORD, DELIVERY, "authorization"),
    ("/webhooks/bird/bs", "bird-signature", "signing-key-123", BIRD_INBOUND,
     "messagebird-signature"),
    ("/webhooks/bird/bs", "bird-signature", "signing-key-123", BIRD_INBOUND,
     "messagebird-request-timestamp"),
    ("/webhooks/bird/sw", "standard-webhooks", STANDARD_SECRET, BIRD_INBOUND,
     "webhook-signature"),
    ("/webhooks/ubiqio/ub", "token", "token-12345678", UBIQIO_INBOUND, "x-switchboard-token"),
])
async def test_a_credential_header_sent_twice_is_refused(
        path: str, scheme: str, secret: str, body: bytes, repeated: str) -> None:
    # The last copy was the one checked: a proxy in front that checks (or logs, or limits by)
    # the first saw other credentials than the ones that let the request in.
    app, producer = _app()
    headers = sign(scheme, secret, url=f"https://hooks.example{path}", body=body, username="u")
    sent = [(repeated, "first-copy-a-proxy-saw"), *headers.items(), *JSON.items()]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        response = await client.post(path, headers=sent, content=body)
        assert (response.status_code, response.json()) == (401, {
            "error": "unauthorized", "message": f"{repeated} header sent more than once"})
        assert not producer.published
        # Any other header may come twice (proxies each add their x-forwarded-for).
        twice = [("x-forwarded-for", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2"),
                 *headers.items(), *JSON.items()]
        assert (await client.post(path, headers=twice, content=body)).status_code == 200


async def test_a_url_token_sent_twice_is_refused() -> None:
    app, producer = _app()
    response = await _post(app, "/webhooks/ubiqio/ub?token=wrong-token-0&token=token-12345678",
                           JSON, UBIQIO_INBOUND)
    assert (response.status_code, response.json()["message"]) == (
        401, "?token= sent more than once")
    assert not producer.published


# --- a form in the charset its content type names ---------------------------------------------

LATIN1_FORM = b"originator=31612345678&recipient=31600000111&id=m-latin1&body=Caf\xe9+cr\xe8me"
FORM = "application/x-www-form-urlencoded"


async def test_a_signed_form_in_a_declared_latin1_charset_is_read_and_kept_byte_exact() -> None:
    # Was 400 "form body is not UTF-8" for a gateway that sends ISO-8859-1 and says so. The
    # signature is still over the bytes as sent, and the raw record keeps them (in base64).
    app, producer = _app()
    url = "https://hooks.example/webhooks/bird/bs"
    headers = sign("bird-signature", "signing-key-123", url=url, body=LATIN1_FORM)
    response = await _post(app, "/webhooks/bird/bs",
                           {**headers, "content-type": f"{FORM}; charset=ISO-8859-1"},
                           LATIN1_FORM)
    assert response.status_code == 200, response.text
    assert _topics(producer) == [RAW.name, "switchboard.message.inbound.v1"]
    raw = orjson.loads(producer.published[0].value)
    assert raw["body_encoding"] == "base64"
    assert base64.b64decode(raw["body"]) == LATIN1_FORM
    assert orjson.loads(producer.published[1].value)["text"] == "Café crème"


@pytest.mark.parametrize(("charset", "reason"), [
    ("x-klingon", "charset 'x-klingon' is not a known text encoding; send UTF-8"),
    ("utf-16", "charset 'utf-16' is not supported for a form"),
    ("rot13", "charset 'rot13' is not a known text encoding"),
])
async def test_a_form_in_a_charset_we_cannot_read_gets_a_json_400_and_is_kept(
        charset: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    app, producer = _app()
    caplog.set_level(logging.ERROR)
    response = await _post(app, "/webhooks/ubiqio/ub",
                           {"x-switchboard-token": "token-12345678",
                            "content-type": f"{FORM}; charset={charset}"},
                           b"fromNumber=38761111222&message=hi")
    assert response.status_code == 400
    assert response.json()["error"] == "unprocessable_payload"
    assert response.json()["message"].startswith(reason)
    assert _topics(producer) == [RAW.name, DEAD_LETTER.name]
    assert "normalizer crashed" not in caplog.text


async def test_the_same_bytes_in_another_charset_are_no_repeat() -> None:
    # The duplicate check hashed method, query and body but not the content type: the same
    # bytes re-sent in the charset they are really in (`%C3%A9` read as windows-1252 is `Ã©`,
    # as UTF-8 `é`) were answered 200 as a repeat, and the corrected text never published.
    app, producer = _app()
    form = (b"fromNumber=38761111222&toNumber=38733000111&message=caf%C3%A9&messageId=u-cs"
            b"&receivedAt=2025-07-03T12%3A00%3A00Z")
    texts = []
    for content_type in (f"{FORM}; charset=windows-1252", FORM, FORM):
        producer.published.clear()
        response = await _post(app, "/webhooks/ubiqio/ub",
                               {"x-switchboard-token": "token-12345678",
                                "content-type": content_type}, form)
        assert response.status_code == 200, response.text
        texts.append([orjson.loads(r.value)["text"] for r in producer.published
                      if r.topic == "switchboard.message.inbound.v1"])
    assert texts == [["cafÃ©"], ["café"], []]  # the last, an exact repeat, is not stored again


# --- what no route takes ---------------------------------------------------------------------


def _refused(outcome: str) -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": "unknown", "account": "unknown", "outcome": outcome}) or 0.0


@pytest.mark.parametrize(("method", "path", "status", "outcome"), [
    ("PUT", "/webhooks/infobip/acme", 405, "method_not_allowed"),
    ("DELETE", "/webhooks/infobip/acme/dlr", 405, "method_not_allowed"),
    ("POST", "/webhooks/infobip/acme/dlr/extra", 404, "no_route"),
    ("POST", "/webhook/infobip/acme", 404, "no_route"),
])
async def test_a_request_no_route_takes_is_logged_and_counted(
        method: str, path: str, status: int, outcome: str,
        caplog: pytest.LogCaptureFixture) -> None:
    # A provider set up with a wrong URL or method got Starlette's 404 or 405, which nothing
    # logged (serve has no access log) or counted: unlike a URL naming an unknown account, it
    # left no trace on our side.
    app, producer = _app()
    before = _refused(outcome)
    caplog.set_level(logging.INFO)
    response = await _post(app, path, {**BASIC, **JSON}, DELIVERY, method=method)
    assert response.status_code == status
    assert response.json()["error"] == "http_error"
    if status == 405:
        assert set(response.headers["allow"].split(", ")) == {"POST", "HEAD", "GET"}
    assert _refused(outcome) == before + 1
    logged = caplog.text
    assert "no route takes the request" in logged and path in logged and method in logged
    assert PASSWORD not in logged
    assert not producer.published


@pytest.mark.parametrize("path", ["/webhooks/infobip/acme", "/ws"])
async def test_a_websocket_handshake_is_a_404_with_the_json_body(
        path: str, caplog: pytest.LogCaptureFixture) -> None:
    # uvicorn hands a WebSocket handshake to the app, and Starlette refused it 403 with an
    # empty text/plain body, not logged or counted: ingest serves no WebSocket anywhere.
    app, producer = _app()
    before = _refused("no_route")
    caplog.set_level(logging.INFO)
    async with served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n"
                     "connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "sec-websocket-version: 13\r\n\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 ")
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body) == {"error": "http_error", "message": "Not Found"}
    assert _refused("no_route") == before + 1
    assert "no route takes the request" in caplog.text and path in caplog.text
    assert not producer.published
