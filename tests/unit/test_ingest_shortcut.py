"""`POST /webhooks/{provider}/{account}` skips Starlette's router (ingest.app.WebhookShortcut):
every such request is answered, counted and stored as the router's route answers it."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from ingest.app import create_app
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from tests.fakes import KeepingProducer

BASIC = "Basic " + base64.b64encode(b"u:password-123").decode()
REPORT = (b'{"results":[{"messageId":"m-1","to":"41793026727","doneAt":'
          b'"2026-02-06T14:18:31.797+0000","status":{"groupName":"DELIVERED","id":5,'
          b'"name":"DELIVERED_TO_HANDSET"}}]}')


def _app() -> tuple[Any, KeepingProducer]:
    accounts = {"acme": {"provider": "infobip", "auth": {
        "scheme": "basic", "username": "u", "secrets": ["password-123"]}}}
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"),
                     parse_accounts({"accounts": accounts}))
    producer = KeepingProducer()
    app.state.handler.producer = producer
    return app, producer


async def _post(path: str, body: bytes, headers: dict[str, str]
                ) -> tuple[int, bytes, list[tuple[str, bytes, bytes | None]]]:
    """The answer, and the records stored, without what differs per request (ids, times)."""
    app, producer = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        response = await client.post(path, content=body, headers=headers)
    stored = [(r.topic, r.key or b"", dict(r.headers).get("ce_type")) for r in producer.published]
    return response.status_code, response.content, stored


CASES = [
    pytest.param(REPORT, {"authorization": BASIC, "content-type": "application/json"},
                 id="stored"),
    pytest.param(REPORT, {"authorization": "Basic d3Jvbmc6d3Jvbmc=",
                          "content-type": "application/json"}, id="unauthorized"),
    pytest.param(b"{not json", {"authorization": BASIC, "content-type": "application/json"},
                 id="dead-letter"),
    pytest.param(REPORT, {"authorization": BASIC, "content-type": "image/png"},
                 id="unsupported-media-type"),
]


@pytest.mark.parametrize(("body", "headers"), CASES)
async def test_the_shortcut_answers_and_stores_as_the_router(body: bytes,
                                                              headers: dict[str, str]) -> None:
    # The trailing-slash URL is the same handler, reached through the router.
    short = await _post("/webhooks/infobip/acme", body, headers)
    routed = await _post("/webhooks/infobip/acme/", body, headers)
    assert short == routed


@pytest.mark.parametrize("path", ["/webhooks/nope/acme", "/webhooks/infobip/nobody"])
async def test_unknown_names_get_the_same_404(path: str) -> None:
    status, body, stored = await _post(path, REPORT, {"authorization": BASIC})
    routed = await _post(path + "/", REPORT, {"authorization": BASIC})
    assert (status, body, stored) == routed
    assert status == 404 and orjson.loads(body)["error"] == "unknown_account"


@pytest.mark.parametrize("path", ["/webhooks//acme", "/webhooks/infobip/", "/webhooks/infobip",
                                  "/hooks/infobip/acme", "/webhooks/infobip/acme/dlr/x/y"])
async def test_paths_the_routes_do_not_take_are_still_404(path: str) -> None:
    status, body, stored = await _post(path, REPORT, {"authorization": BASIC})
    assert status == 404 and stored == []
    assert orjson.loads(body)["error"] == "http_error"


async def test_a_kind_segment_still_reaches_the_handler() -> None:
    status, _, stored = await _post("/webhooks/infobip/acme/dlr", REPORT,
                                    {"authorization": BASIC, "content-type": "application/json"})
    assert status == 200 and len(stored) == 2
