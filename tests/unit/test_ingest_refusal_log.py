"""Refused requests are counted one by one but logged once per kind and window: a scanner, or
a provider retrying with a wrong secret, got one warning line per request."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY

from ingest.app import UNPARSED_REQUEST, create_app
from switchboard.accounts import parse_accounts
from switchboard.localkafka import free_port
from switchboard.serving import EmbeddedServer
from switchboard.settings import Settings
from tests.fakes import KeepingProducer

PASSWORD = "password-123"
WRONG = "not-the-password-9"
JSON = {"content-type": "application/json"}


def _app() -> Any:
    accounts = parse_accounts({"accounts": {
        "acme": {"provider": "infobip",
                 "auth": {"scheme": "basic", "username": "u", "secrets": [PASSWORD]}},
        "wx": {"provider": "webex", "auth": {"scheme": "hub-signature", "secrets": [PASSWORD]}},
    }})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    app.state.handler.producer = KeepingProducer()
    return app


def _basic(password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"u:{password}".encode()).decode()}


async def _post_all(app: Any, paths: list[str], headers: dict[str, str]) -> list[int]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        return [(await client.post(path, headers=headers, content=b"{}")).status_code
                for path in paths]


def _events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [record.msg for record in caplog.records if isinstance(record.msg, dict)]


def _count(provider: str, account: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": provider, "account": account, "outcome": outcome}) or 0.0


async def test_a_provider_retrying_with_a_wrong_secret_is_logged_once_then_summed_up(
        caplog: pytest.LogCaptureFixture) -> None:
    app = _app()
    caplog.set_level(logging.INFO)
    before = _count("infobip", "acme", "unauthorized")
    statuses = await _post_all(app, ["/webhooks/infobip/acme"] * 40, {**_basic(WRONG), **JSON})
    assert statuses == [401] * 40
    assert _count("infobip", "acme", "unauthorized") == before + 40  # every one counted
    logged = [e for e in _events(caplog) if e["event"].startswith("webhook authentication")]
    assert len(logged) == 1
    assert logged[0]["reason"] == "wrong username or password"

    app.state.handler.refusals.flush()  # the window's end (or ingest stopping)
    summary = [e for e in _events(caplog) if e["event"].startswith("webhook authentication")][1:]
    assert [e["event"] for e in summary] == [
        "webhook authentication failed: 39 more in the last 60 s"]
    assert summary[0]["more"] == 39 and summary[0]["account"] == "acme"
    assert WRONG not in caplog.text and PASSWORD not in caplog.text

    # A new window: the next one is logged again, with nothing to sum up after it.
    caplog.clear()
    await _post_all(app, ["/webhooks/infobip/acme"], {**_basic(WRONG), **JSON})
    app.state.handler.refusals.flush()
    assert [e["event"] for e in _events(caplog)] == ["webhook authentication failed"]


async def test_a_caller_varying_its_signature_header_gets_one_line_a_window(
        caplog: pytest.LogCaptureFixture) -> None:
    # The hub signature's algorithm was quoted in the reason, which tells kinds apart: anyone
    # who knows the URL wrote a line per algorithm they made up, 100 a minute.
    app = _app()
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        for n in range(50):
            response = await client.post("/webhooks/webex/wx", content=b"{}", headers={
                **JSON, "x-hub-signature": f"made-up-{n}=00"})
            assert response.status_code == 401
    assert "sha256" in response.json()["message"]  # what to send instead
    app.state.handler.refusals.flush()
    logged = [e for e in _events(caplog) if e["event"].startswith("webhook authentication")]
    assert [e.get("more") for e in logged] == [None, 49]
    assert "made-up" not in caplog.text


async def test_a_scanner_inventing_account_names_gets_one_line_a_window_per_provider(
        caplog: pytest.LogCaptureFixture) -> None:
    # Each account name was a kind of its own: a scanner trying names wrote 100 lines a
    # minute, then a summary of the rest.
    app = _app()
    caplog.set_level(logging.INFO)
    before = _count("infobip", "unknown", "unknown_account")
    paths = [f"/webhooks/infobip/guess-{n}" for n in range(300)]
    assert set(await _post_all(app, paths, JSON)) == {404}
    assert set(await _post_all(app, ["/webhooks/no-such/acme", "/webhooks/nope/x"], JSON)) == {
        404}
    assert _count("infobip", "unknown", "unknown_account") == before + len(paths)
    app.state.handler.refusals.flush()
    logged = [e for e in _events(caplog) if e["event"].startswith("webhook for unknown account")]
    assert [(e["event"], e["provider"], e["status"], e.get("account"), e.get("path"),
             e.get("more")) for e in logged] == [
        # the first name of the minute, as an example
        ("webhook for unknown account", "infobip", 404, "guess-0",
         "/webhooks/infobip/guess-0", None),
        # a provider name that is none is the caller's to invent too
        ("webhook for unknown account", "unknown", 404, "acme", "/webhooks/no-such/acme",
         None),
        ("webhook for unknown account: 299 more in the last 60 s", "infobip", 404, None, None,
         299),
        ("webhook for unknown account: 1 more in the last 60 s", "unknown", 404, None, None,
         1),
    ]

    # Nor do the names make metric series: every one is counted under account "unknown".
    labels = {value for metric in REGISTRY.collect()
              if metric.name == "switchboard_ingest_requests"
              for sample in metric.samples for value in sample.labels.values()}
    assert not {"guess-0", "guess-299", "no-such", "nope"} & labels


async def test_a_scanner_probing_paths_no_route_takes_gets_one_line_a_window(
        caplog: pytest.LogCaptureFixture) -> None:
    # Each path was a kind of its own: a scanner probing /wp-login.php, /.env, ... wrote 100
    # lines a minute, then a summary of the rest.
    app = _app()
    caplog.set_level(logging.INFO)
    paths = ["/.env", *(f"/probe-{n}.php" for n in range(299))]
    assert set(await _post_all(app, paths, JSON)) == {404}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        assert (await client.put("/webhooks/infobip/acme")).status_code == 405
    app.state.handler.refusals.flush()
    logged = [e for e in _events(caplog) if e["event"].startswith("no route takes")]
    assert [(e["event"], e.get("status"), e.get("path"), e.get("method")) for e in logged] == [
        ("no route takes the request", 404, "/.env", "POST"),  # the first path, as an example
        ("no route takes the request", 405, "/webhooks/infobip/acme", "PUT"),
        ("no route takes the request: 299 more in the last 60 s", 404, None, None),
    ]


async def test_the_summary_comes_when_the_window_ends_without_another_request(
        caplog: pytest.LogCaptureFixture) -> None:
    app = _app()
    app.state.handler.refusals.window_s = 0.05
    caplog.set_level(logging.INFO)
    await _post_all(app, ["/webhooks/infobip/nobody"] * 3, JSON)
    await asyncio.sleep(0.2)
    assert [e["event"] for e in _events(caplog)] == [
        "webhook for unknown account", "webhook for unknown account: 2 more in the last 0.05 s"]


async def test_requests_uvicorn_cannot_parse_are_logged_once_a_window(
        caplog: pytest.LogCaptureFixture) -> None:
    # A TLS handshake on the plain port, or a scanner's garbage, is refused by uvicorn before
    # ingest sees it, with a warning line each: as many lines as the internet sent.
    app = _app()
    caplog.set_level(logging.INFO)
    port = free_port()
    server = EmbeddedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n")
            assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
            writer.close()
    finally:
        server.should_exit = True
        await serving
    unparsed = [record for record in caplog.records if record.name == "uvicorn.error"
                and record.msg == UNPARSED_REQUEST]
    assert len(unparsed) <= 1  # none if an earlier test had one in this window
