"""Bird's answer on ingest's other paths, now that it comes with the events (normalizers.base.
Normalized): reports given their command id by the correlation index (new events, the answer
kept), bodies normalized off the event loop, and repeats of each."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from ingest.normalizing import OFF_LOOP_BODY_BYTES
from switchboard.accounts import parse_accounts
from tests.fakes import KeepingProducer
from tests.unit.test_ingest_bird_answer import JSON_ANSWER, LEGACY_ANSWER, _body

PASSWORD = "password-123"
AUTH = {"authorization": "Basic " + base64.b64encode(f"u:{PASSWORD}".encode()).decode()}
FORM = "application/x-www-form-urlencoded"
STATUS_QUERY = ("id=msg-paths-1&recipient=31612345678&status=delivered"
                "&statusDatetime=2019-01-11T09%3A17%3A11%2B00%3A00")


class Index:
    """A correlation index that knows every message: its command is `cmd-<message id>`."""

    providers = frozenset({"bird"})

    async def command_for(self, provider: str, account: str, message_id: str) -> str | None:
        return f"cmd-{message_id}"


def _app(producer: KeepingProducer, correlating: bool) -> Any:
    from ingest.app import create_app
    from switchboard.settings import Settings

    accounts = parse_accounts({"accounts": {"shop": {
        "provider": "bird", "auth": {"scheme": "basic", "username": "u", "secrets": [PASSWORD]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    app.state.handler.producer = producer
    if correlating:
        app.state.handler.correlations = Index()
    return app


async def _send(app: Any, method: str, query: str, body: bytes,
                content_type: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        return await client.request(method, f"/webhooks/bird/shop?{query}" if query
                                    else "/webhooks/bird/shop", content=body,
                                    headers={**AUTH, "content-type": content_type})


def _large_channels_body() -> bytes:
    data = orjson.loads(_body("channels_sms_inbound"))
    data["padding"] = "x" * OFF_LOOP_BODY_BYTES  # an unread field: off the loop, same events
    return orjson.dumps(data)


CASES = [
    ("legacy status by GET, correlated", "GET", STATUS_QUERY, b"", "", True, LEGACY_ANSWER),
    ("legacy status by GET", "GET", STATUS_QUERY, b"", "", False, LEGACY_ANSWER),
    ("large legacy form", "POST", "", b"originator=31612345678&recipient=3197010260000&id=mo-9"
     b"&body=" + b"x" * OFF_LOOP_BODY_BYTES, FORM, True, LEGACY_ANSWER),
    ("large channels envelope", "POST", "", _large_channels_body(), "application/json", True,
     JSON_ANSWER),
]


@pytest.mark.parametrize(("name", "method", "query", "body", "content_type", "correlating",
                          "answer"), CASES, ids=[case[0] for case in CASES])
async def test_bird_is_answered_as_its_family_on_every_path(
        name: str, method: str, query: str, body: bytes, content_type: str, correlating: bool,
        answer: tuple[bytes, str]) -> None:
    producer = KeepingProducer()
    app = _app(producer, correlating)
    response = await _send(app, method, query, body, content_type)
    assert response.status_code == 200, response.text
    assert (response.content, response.headers["content-type"]) == answer
    published = len(producer.published)
    if "correlated" in name:
        [event] = [orjson.loads(record.value) for record in producer.published[1:]]
        assert event["correlation_id"] == "cmd-msg-paths-1"
    repeat = await _send(app, method, query, body, content_type)
    assert (repeat.status_code, repeat.content) == (200, answer[0])
    assert len(producer.published) == published
