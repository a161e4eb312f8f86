"""The simulator's own endpoints answer like an API: every refusal of the control API is
`{"error": <code>, "message": <what is wrong and what to do>}`, as ingest's are, and `GET /`
(the address `run` prints) is a JSON index of the control endpoints and of the provider paths
each account is served on. The provider imitations' error bodies are their providers' own
(tests/unit/test_simulator.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.app import create_simulator_app
from switchboard.accounts import load_accounts, parse_accounts

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"
BASE = "http://127.0.0.1:8090"
USER = "+41790000001"


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    app = create_simulator_app(load_accounts(EXAMPLE_ACCOUNTS), "http://ingest:pw@127.0.0.1:9",
                               status_delay_s=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "says"), [
    ("GET", "/_sim/sends?account=demo-infobp", None, 404, "unknown_account",
     "accounts: demo-bird, demo-bird-platform, demo-infobip"),
    ("GET", "/_sim/sends?provider=infobib", None, 400, "unknown_provider",
     "providers: bird, infobip, infobip-omnichat, ubiqio, webex"),
    ("POST", "/_sim/inbound", b"{", 400, "invalid_json", "it takes {account, from, text, "),
    ("POST", "/_sim/inbound", {"account": "demo-infobip"}, 400, "invalid_request",
     "missing or empty: from, text; it takes {account, from, text, postback?, to?}"),
    ("POST", "/_sim/inbound", {"account": "demo-infobp", "from": USER, "text": "x"}, 404,
     "unknown_account", "demo-infobip"),
    # The account is there, but webhook-only: nothing to send through the simulator for it.
    ("POST", "/_sim/inbound", {"account": "demo-messagebird", "from": USER, "text": "x"}, 409,
     "cannot_simulate", "give it one, or use an account of GET /_sim/health's accounts"),
    ("POST", "/_sim/inbound", {"account": "demo-ubiqio", "from": USER, "text": "Yes",
                               "postback": "YES"}, 400, "unsupported_inbound",
     "no buttons to tap; send it without \"postback\""),
    ("POST", "/_sim/faults", {"mode": "explode"}, 400, "invalid_fault",
     "it takes {mode, count?, account? or provider?"),
    # Taken before, listed with a null delay, and sent as "Retry-After: inf".
    ("POST", "/_sim/faults", {"mode": "slow", "delay_s": "inf"}, 400, "invalid_fault",
     "delay_s: Input should be a finite number"),
    ("POST", "/_sim/faults", {"mode": "http_429", "retry_after_s": "Infinity"}, 400,
     "invalid_fault", "retry_after_s: Input should be a finite number"),
    ("POST", "/_sim/faults", {"mode": "http_500", "provider": "infobib"}, 400,
     "unknown_provider", "providers: bird, infobip"),
    ("POST", "/_sim/faults", {"mode": "http_500", "account": "demo-infobp"}, 404,
     "unknown_account", "demo-infobip"),
    ("POST", "/_sim/faults", {"mode": "expired", "provider": "bird"}, 400,
     "unanswerable_fault", "name one of theirs"),
    ("GET", "/_sim/send", None, 404, "http_error", "GET / lists them"),
    ("PUT", "/_sim/faults", None, 405, "http_error", "GET / lists them"),
])
async def test_each_control_refusal_is_a_code_and_a_message_saying_what_to_do(
        sim: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | bytes | None,
        status: int, code: str, says: str) -> None:
    # The body was {"error": <text>} with no "message", unlike ingest's and the workers'.
    content = body if isinstance(body, bytes) else None
    json_body = body if isinstance(body, dict) else None
    response = await sim.request(method, path, content=content, json=json_body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error", "message"}
    assert response.json()["error"] == code
    assert says in response.json()["message"]


async def test_an_outbound_table_it_cannot_serve_is_a_409_saying_where_to_correct_it() -> None:
    accounts = parse_accounts({"accounts": {"half": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["demo-password"]},
        "outbound": {"base_url": f"{BASE}/infobip"}}}})  # no api_key, no sender
    app = create_simulator_app(accounts, None, status_delay_s=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE) as client:
        response = await client.post("/_sim/inbound",
                                     json={"account": "half", "from": USER, "text": "x"})
    assert response.status_code == 409 and response.json()["error"] == "cannot_simulate"
    message = response.json()["message"]
    assert message.startswith("account 'half' cannot be simulated: ")
    assert message.endswith("; correct [accounts.half.outbound] in the accounts file and restart")


async def test_get_root_is_an_index_of_the_control_api_and_of_each_accounts_paths(
        sim: httpx.AsyncClient) -> None:
    # It answered 404: the address `run` prints as the simulator's was no page at all.
    response = await sim.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    index = response.json()
    assert index["service"] == "switchboard provider simulator" and index["about"]
    assert index["ingest_url"] == "http://ingest:***@127.0.0.1:9"  # its password masked
    assert set(index["control"]) == {
        "GET /", "GET /_sim/sends", "DELETE /_sim/sends", "POST /_sim/inbound",
        "POST /_sim/faults", "GET /_sim/faults", "DELETE /_sim/faults", "GET /_sim/webhooks",
        "GET /_sim/health"}
    assert all(isinstance(line, str) and line for line in index["control"].values())
    by_name = {account["name"]: account for account in index["accounts"]}
    assert by_name["demo-infobip"] == {
        "name": "demo-infobip", "provider": "infobip", "base_url": f"{BASE}/infobip",
        "paths": ["POST /infobip/messages-api/1/messages"]}
    assert by_name["demo-ubiqio"]["paths"] == ["POST /ubiqio/mvapi/auth/token",
                                               "POST /ubiqio/mvapi/message/send"]
    assert {"name": "demo-messagebird", "provider": "bird"} in index["webhook_only"]
    assert "demo-messagebird" not in by_name


async def test_every_path_the_index_lists_is_served(sim: httpx.AsyncClient) -> None:
    # Listed but not served (or the other way round) would send a user to a 404.
    index = (await sim.get("/")).json()
    listed = list(index["control"]) + [path for account in index["accounts"]
                                       for path in account["paths"]]
    for entry in listed:
        method, path = entry.split(" ", 1)
        path = path.replace("{", "").replace("}", "")  # a template's names as values
        response = await sim.request(method, path, json={})
        assert response.status_code not in (404, 405), (entry, response.text)


async def test_a_bug_in_a_control_endpoint_is_a_json_500() -> None:
    # Starlette's own 500 was "Internal Server Error" in plain text, unlike every other answer.
    app = create_simulator_app(load_accounts(EXAMPLE_ACCOUNTS), None, status_delay_s=0)

    def broken(**names: str | None) -> list[Any]:
        raise RuntimeError("a bug")

    app.state.simulator.recorder.find = broken
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        response = await client.get("/_sim/sends")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "its log has the error" in response.json()["message"]
    assert "a bug" not in response.text  # what failed is for the log, not the caller


async def test_a_refusal_is_logged_once_a_minute_per_kind(
        caplog: pytest.LogCaptureFixture) -> None:
    # The simulator keeps no access log: a refused /_sim call left no line at all.
    caplog.set_level(logging.INFO)
    app = create_simulator_app(load_accounts(EXAMPLE_ACCOUNTS), None, status_delay_s=0)
    # Started and stopped: the stop sums up the minute's held-back lines.
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        for _ in range(3):
            await client.get("/_sim/sends", params={"account": "demo-infobp"})
        await client.get("/_sim/send")
    lines = [record.msg for record in caplog.records if isinstance(record.msg, dict)
             and record.msg["event"].startswith("simulator request refused")]
    first, not_served, summed = lines
    assert (first["status"], first["error"], first["path"], first["method"]) == (
        404, "unknown_account", "/_sim/sends", "GET")
    assert first["message"].startswith("no account 'demo-infobp'; accounts: ")
    assert (not_served["status"], not_served["error"], not_served["path"]) == (
        404, "http_error", "/_sim/send")
    assert summed["event"] == "simulator request refused: 2 more in the last 60 s"
    assert (summed["error"], summed["more"]) == ("unknown_account", 2)
