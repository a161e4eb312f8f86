"""A normalizer bug's exception may quote the webhook (pydantic's input_value=, a phone number):
ingest logs its type and where it was raised, never its text, which the shipped log would
carry. The raw request is kept in the dead letters all the same."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import httpx
import pytest

import normalizers.ubiqio
from ingest.app import create_app
from normalizers import WebhookRequest
from switchboard.accounts import parse_accounts
from switchboard.cli.normalize import cmd_normalize
from switchboard.events import MessageEvent
from switchboard.settings import Settings
from switchboard.topics import DEAD_LETTER, RAW
from tests.fakes import KeepingProducer

CONTACT = "+38761111222"


def _crash(request: WebhookRequest) -> list[MessageEvent]:
    raise ValueError(f"1 validation error: from_ [input_value='{CONTACT}', input_type=str]")


async def test_a_normalizer_crash_is_logged_without_its_text(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(normalizers.ubiqio, "normalize", _crash)
    accounts = parse_accounts({"accounts": {
        "ub": {"provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["token-12345678"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        response = await client.post("/webhooks/ubiqio/ub", json={"fromNumber": CONTACT},
                                     headers={"x-switchboard-token": "token-12345678"})
    assert response.status_code == 400
    assert response.json()["message"] == ("unexpected ubiqio payload: the normalizer raised "
                                          "ValueError")
    assert [record.topic for record in producer.published] == [RAW.name, DEAD_LETTER.name]
    lines: list[dict[str, Any]] = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    [crash] = [line for line in lines if line["event"] == "normalizer crashed"]
    assert "ValueError (its text left out)" in crash["exception"]
    assert "_crash" in crash["exception"]  # where it was raised
    assert not [line for line in lines if CONTACT in repr(line)]
    assert CONTACT not in caplog.text


def test_switchboard_normalize_shows_a_crash_in_full(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    # The operator's own terminal, reproducing a dead letter: there the text is what helps.
    monkeypatch.setattr(normalizers.ubiqio, "normalize", _crash)
    body = tmp_path / "body.json"
    body.write_bytes(b'{"fromNumber": "1"}')
    args = argparse.Namespace(provider="ubiqio", account="cli", file=str(body), query=None,
                              content_type=None, method=None)
    assert cmd_normalize(args, Settings(kafka_bootstrap_servers="127.0.0.1:1")) == 2
    err = capsys.readouterr().err
    assert f"input_value='{CONTACT}'" in err and "Traceback" in err
    assert err.rstrip().endswith("error: unexpected ubiqio payload: the normalizer raised "
                                 "ValueError")
