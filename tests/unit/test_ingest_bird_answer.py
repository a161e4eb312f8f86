"""What ingest answers a Bird webhook, and that it reads its JSON body once to give it: the
answer comes with the events (normalizers.base.Normalized). Before, ingest asked
bird.acknowledge for it after storing, which parsed the body a second time."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from ingest.app import create_app
from normalizers import bird
from normalizers.base import JsonObject
from normalizers.bodies import parse_json_object
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from tests.fakes import KeepingProducer
from tests.fixtures import load_fixtures

PASSWORD = "password-123"
AUTH = {"authorization": "Basic " + base64.b64encode(f"u:{PASSWORD}".encode()).decode()}
FORM = "application/x-www-form-urlencoded"


def _body(name: str) -> bytes:
    [fixture] = [f for f in load_fixtures("bird") if f.name == name]
    return fixture.body()


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str
    answer: tuple[bytes, str]
    parses: int  # JSON bodies parsed by the Bird module for one request


JSON_ANSWER = (b'{"ok":true}', "application/json")
LEGACY_ANSWER = (b"OK", "text/plain; charset=utf-8")
CASES = [
    Case("channels envelope", _body("channels_sms_inbound"), "application/json", JSON_ANSWER, 1),
    Case("legacy fields as json (Flow Builder)", orjson.dumps({
        "originator": "31612345678", "recipient": "3197010260000", "body": "hi", "id": "mo-1"}),
         "application/json", LEGACY_ANSWER, 1),
    Case("legacy form", b"originator=31612345678&recipient=3197010260000&body=hi&id=mo-1",
         FORM, LEGACY_ANSWER, 0),
]


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The bodies bird.py hands to the JSON parser, in order."""
    seen: list[bytes] = []
    real = parse_json_object

    def counting(body: bytes) -> JsonObject:
        seen.append(body)
        return real(body)

    monkeypatch.setattr(bird, "parse_json_object", counting)
    yield seen


def _app(producer: KeepingProducer) -> Any:
    accounts = parse_accounts({"accounts": {"shop": {
        "provider": "bird", "auth": {"scheme": "basic", "username": "u", "secrets": [PASSWORD]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    app.state.handler.producer = producer
    return app


async def _post(app: Any, body: bytes, content_type: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        return await client.post("/webhooks/bird/shop", content=body,
                                 headers={**AUTH, "content-type": content_type})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_a_bird_webhook_is_parsed_once_and_answered_as_its_family(
        case: Case, parses: list[bytes]) -> None:
    producer = KeepingProducer()
    app = _app(producer)
    response = await _post(app, case.body, case.content_type)
    assert response.status_code == 200
    assert (response.content, response.headers["content-type"]) == case.answer
    assert len(parses) == case.parses
    assert len(producer.published) == 2  # the raw record and its one event

    # A repeat is answered alike, from the request alone (its events are not read again).
    repeat = await _post(app, case.body, case.content_type)
    assert (repeat.status_code, repeat.content) == (200, case.answer[0])
    assert len(producer.published) == 2


async def test_a_refused_bird_body_gets_the_refusal_not_an_answer(parses: list[bytes]) -> None:
    producer = KeepingProducer()
    response = await _post(_app(producer), b'{"service": "channels", "event": ',
                           "application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "unprocessable_payload"
    assert len(parses) == 1
