"""A transfer coding other than chunked gets 501 (RFC 9112 s6.1), in JSON, before the app:
llhttp read `gzip, chunked` as chunked and handed the body on still gzipped, which was then
kept raw and dead-lettered as a body that is not JSON. Real servers on 127.0.0.1, spoken to
through raw sockets."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ingest.app import create_app
from switchboard.accounts import parse_accounts
from switchboard.serving import INGEST_HTTP
from switchboard.settings import Settings
from tests.fakes import KeepingProducer
from tests.unit.fakes import served
from tests.unit.test_ingest_protocol import _answer, _count, _exchange

REPORT = (b'{"results": [{"messageId": "m-coding", "to": "41793026727", "status": '
          b'{"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"}}]}')
AUTHORIZATION = "Basic " + base64.b64encode(b"u:password-123").decode()


@pytest.fixture(scope="module")
async def served_app() -> AsyncIterator[tuple[int, KeepingProducer]]:
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                        "secrets": ["password-123"]}}}})
    app: Any = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    producer = app.state.handler.producer = KeepingProducer()
    async with served(app, http=INGEST_HTTP) as port:
        yield port, producer


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def _request(*codings: str, body: bytes) -> bytes:
    head = ["POST /webhooks/infobip/acme HTTP/1.1", "host: ingest",
            f"authorization: {AUTHORIZATION}", "content-type: application/json",
            *(f"transfer-encoding: {coding}" for coding in codings), "connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + _chunked(body)


@pytest.mark.parametrize("codings", [("gzip, chunked",), ("GZIP ,Chunked",),
                                     ("gzip", "chunked"), ("identity, chunked",),
                                     ("x-custom;q=1, chunked",)])
async def test_a_transfer_coding_other_than_chunked_gets_501(
        served_app: tuple[int, KeepingProducer], codings: tuple[str, ...]) -> None:
    port, producer = served_app
    published = len(producer.published)
    before = _count("unsupported_transfer_encoding")
    raw = await _exchange(port, _request(*codings, body=gzip.compress(REPORT)))
    status, headers, body = _answer(raw)
    assert status == 501, raw[:200]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert body["error"] == "unsupported_transfer_encoding"
    assert len(producer.published) == published  # nothing kept: not the body as sent
    assert _count("unsupported_transfer_encoding") == before + 1


@pytest.mark.parametrize("coding", ["chunked", "Chunked", " chunked "])
async def test_chunked_alone_is_read(served_app: tuple[int, KeepingProducer],
                                     coding: str) -> None:
    port, producer = served_app
    raw = await _exchange(port, _request(coding, body=REPORT))
    status, _, _ = _answer(raw)
    assert status == 200, raw[:200]
    assert producer.published[-1].topic == "switchboard.message.status.v1"
