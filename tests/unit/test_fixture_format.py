"""The fixture loaders (webhooks: tests/fixtures.py; outbound and simulator:
tests/outbound_fixtures.py) refuse a file whose keys are not the format's: a misspelt key
would otherwise be ignored, and the case would quietly check less than it says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests import fixtures, outbound_fixtures
from tests.fixtures import FixtureFormatError, load_fixtures
from tests.outbound_fixtures import (
    load_outbound_account,
    load_outbound_cases,
    load_simulator_accounts,
    load_simulator_sends,
)

REPLY = {"status": 200, "body": {"id": "x-1"}}
ACCOUNT = {"description": "d", "config": {}, "send_path": "/send", "ok_reply": REPLY,
           "ok_id": "x-1"}
CASE = {"description": "d", "requests": [{"method": "POST", "url": "https://p.test/send",
                                          "headers": {}, "json": {}}],
        "receipt": {"provider_message_id": "x-1"}}
SIM_ACCOUNTS = {"description": "d", "accounts": {}, "postbacks": {}, "refuses_postbacks": []}
SIM_SEND = {"description": "d", "account": "a",
            "request": {"path": "/send", "headers": {}, "json": {}},
            "answer": {"status": 200, "json": {}}, "events": [{"status": "delivered"}]}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(outbound_fixtures, "FIXTURES", tmp_path)
    monkeypatch.setattr(fixtures, "FIXTURES", tmp_path)
    return tmp_path


def write(root: Path, path: str, spec: dict[str, Any]) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(orjson.dumps(spec))


def test_well_formed_files_load(root: Path) -> None:
    write(root, "p/outbound/account.json", ACCOUNT)
    write(root, "p/outbound/text.json", CASE)
    write(root, "p/simulator/accounts.json", SIM_ACCOUNTS)
    write(root, "p/simulator/send.json", {**SIM_SEND, "bad_request": {"status": 400},
                                          "rejected": {"status": 200}})
    write(root, "p/simulator/other.json", SIM_SEND)
    assert load_outbound_account("p").ok_id == "x-1"
    assert [case.id for case in load_outbound_cases("p")] == ["p/text"]
    assert load_simulator_accounts("p") == SIM_ACCOUNTS
    assert [case.id for case in load_simulator_sends("p")] == ["p/other", "p/send"]


@pytest.mark.parametrize(("spec", "unknown"), [
    ({"reqests" if key == "requests" else key: value for key, value in CASE.items()},
     "reqests"),
    ({**CASE, "reply": {"status": 500, "bdy": {}}}, "bdy"),
    ({**CASE, "requests": [{"method": "POST", "url": "u", "headers": {}, "json": {},
                            "jsn": {}}]}, "jsn"),
])
def test_an_outbound_case_with_an_unknown_key_does_not_load(
        root: Path, spec: dict[str, Any], unknown: str) -> None:
    write(root, "p/outbound/typo.json", spec)
    with pytest.raises(FixtureFormatError, match=rf"p/outbound/typo\.json.*'{unknown}'"):
        load_outbound_cases("p")


def test_an_outbound_account_with_an_unknown_key_does_not_load(root: Path) -> None:
    write(root, "p/outbound/account.json", {**ACCOUNT, "tokn": {"path": "/t", "reply": REPLY}})
    with pytest.raises(FixtureFormatError, match="'tokn'"):
        load_outbound_account("p")


def test_a_file_missing_a_required_key_does_not_load(root: Path) -> None:
    spec = dict(SIM_ACCOUNTS)
    del spec["refuses_postbacks"]
    write(root, "p/simulator/accounts.json", spec)
    with pytest.raises(FixtureFormatError, match=r"missing.*'refuses_postbacks'"):
        load_simulator_accounts("p")


@pytest.mark.parametrize(("name", "spec", "unknown"), [
    ("case.json", {**SIM_SEND, "event": SIM_SEND["events"]}, "event"),
    ("case.json", {**SIM_SEND, "answer": {"status": 200, "jsn": {"id": 1}}}, "jsn"),
    # only send.json says how the provider answers a bad request
    ("case.json", {**SIM_SEND, "bad_request": {"status": 400}}, "bad_request"),
])
def test_a_simulator_send_with_an_unknown_key_does_not_load(
        root: Path, name: str, spec: dict[str, Any], unknown: str) -> None:
    write(root, f"p/simulator/{name}", spec)
    with pytest.raises(FixtureFormatError, match=f"'{unknown}'"):
        load_simulator_sends("p")


WEBHOOK = {"description": "d", "source": "s", "request": {"body": {}}, "events": []}


def test_a_well_formed_webhook_fixture_loads(root: Path) -> None:
    write(root, "p/case.json", WEBHOOK)
    assert [fixture.id for fixture in load_fixtures("p")] == ["p/case"]


@pytest.mark.parametrize(("spec", "complaint"), [
    ({**WEBHOOK, "event": []}, "'event'"),
    ({**WEBHOOK, "request": {"body": {}, "content-type": "text/xml"}}, "'content-type'"),
    ({"description": "d", "source": "s", "events": []}, "missing keys ['request']"),
    ({**WEBHOOK, "error": "bad"}, "exactly one of"),
    ({"description": "d", "source": "s", "request": {}}, "exactly one of"),
])
def test_a_webhook_fixture_not_in_the_format_does_not_load(
        root: Path, spec: dict[str, Any], complaint: str) -> None:
    write(root, "p/typo.json", spec)
    with pytest.raises(FixtureFormatError, match=rf"p/typo\.json.*{re.escape(complaint)}"):
        load_fixtures("p")
