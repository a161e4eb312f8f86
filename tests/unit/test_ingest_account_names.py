"""Account names with accents: the same name reaches the same account whether it is written
composed (NFC) or decomposed (NFD), in the accounts file or in the webhook URL."""

from __future__ import annotations

import base64
import unicodedata
from typing import Any

import httpx
import orjson
import pytest

from ingest.app import create_app
from switchboard.accounts import AccountsError, parse_accounts
from switchboard.settings import Settings
from tests.fakes import KeepingProducer

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
PASSWORD = "password-123"


def _infobip(name: str) -> dict[str, Any]:
    return {name: {"provider": "infobip",
                   "auth": {"scheme": "basic", "username": "u", "secrets": [PASSWORD]}}}


async def _post(configured: str, path: str) -> tuple[int, KeepingProducer]:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"),
                     parse_accounts({"accounts": _infobip(configured)}))
    producer = KeepingProducer()
    app.state.handler.producer = producer
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        response = await client.post(path, content=b'{"results": []}', headers={
            "authorization": "Basic " + base64.b64encode(f"u:{PASSWORD}".encode()).decode(),
            "content-type": "application/json"})
    return response.status_code, producer


@pytest.mark.parametrize("configured", [NFC, NFD], ids=["config-nfc", "config-nfd"])
@pytest.mark.parametrize("path", ["/webhooks/infobip/caf%C3%A9",       # é composed (NFC)
                                  "/webhooks/infobip/cafe%CC%81"],     # e + combining accent
                         ids=["url-nfc", "url-nfd"])
async def test_an_accented_account_is_reached_in_either_unicode_form(configured: str,
                                                                     path: str) -> None:
    # One of the two forms got 404 unknown_account: a provider (or the person pasting the URL
    # into its console) that wrote the name the other way lost every webhook.
    status, producer = await _post(configured, path)
    assert status == 200
    raw = orjson.loads(producer.published[0].value)
    assert raw["account"] == configured  # events carry the name as the accounts file has it


async def test_another_name_is_still_unknown() -> None:
    status, producer = await _post(NFC, "/webhooks/infobip/cafe")
    assert status == 404
    assert producer.published == []


def test_two_accounts_whose_names_differ_only_in_unicode_form_are_refused_at_load() -> None:
    # Both loaded, and a webhook URL reached one or the other depending on how the provider
    # encoded it: refused, naming both so the difference is visible.
    with pytest.raises(AccountsError, match=r"accounts\.toml: accounts 'caf\\xe9' and "
                                            r"'cafe\\u0301' are the same name"):
        parse_accounts({"accounts": {**_infobip(NFC), **_infobip(NFD)}}, "accounts.toml")
