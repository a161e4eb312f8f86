"""During a rotation an account has two secrets: every scheme says which one a request matched,
and ingest counts those the older one authenticated, so an operator sees when the provider has
switched and when the old secret is no longer used."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from ingest import auth
from ingest.app import create_app
from ingest.auth import AuthError, SignedRequest, verify
from ingest.signing import sign
from switchboard.accounts import AuthConfig, parse_accounts
from switchboard.settings import Settings
from tests.fakes import KeepingProducer

# Valid for every scheme: a standard-webhooks key, and long enough for an HS256 JWT key.
NEW = "whsec_" + base64.b64encode(b"the-new-signing-key-of-32-bytes!").decode()
OLD = "whsec_" + base64.b64encode(b"the-old-signing-key-of-32-bytes!").decode()
URL = "https://hooks.example/webhooks/infobip/acme?id=42"
QUERY = "id=42"
BODY = b'{"results": [{"messageId": "m-1", "status": {"groupName": "DELIVERED"}}]}'
# The token scheme twice: its secret comes in a header or in the URL.
SCHEMES = [*sorted(set(auth.VERIFIERS) - {"token"}), "token-header", "token-url"]


def _scheme(case: str) -> str:
    return "token" if case.startswith("token-") else case


def _config(case: str) -> AuthConfig:
    return AuthConfig.model_validate({"scheme": _scheme(case), "secrets": [NEW, OLD],
                                      "username": "u"})


def _signed(case: str, secret: str, body: bytes = BODY) -> SignedRequest:
    if case == "token-url":
        return SignedRequest(method="POST", url=URL, query=f"{QUERY}&token={secret}",
                             headers={}, body=body, now=time.time())
    headers = sign(_scheme(case), secret, url=URL, body=body, query=QUERY, username="u")
    return SignedRequest(method="POST", url=URL, query=QUERY, headers=headers, body=body,
                         now=time.time())


def test_every_scheme_is_tested() -> None:
    assert {_scheme(case) for case in SCHEMES} == set(auth.VERIFIERS)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_request_signed_with_the_first_secret_is_said_to_match_it(scheme: str) -> None:
    assert verify(_signed(scheme, NEW), _config(scheme)) == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_request_signed_with_the_older_secret_is_said_to_match_it(scheme: str) -> None:
    # Before, the verifiers only said "authentic": nothing could tell an operator whether the
    # provider still signed with the old secret, so when it was safe to drop it.
    assert verify(_signed(scheme, OLD), _config(scheme)) == 1


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_request_signed_with_neither_is_still_refused(scheme: str) -> None:
    other = "whsec_" + base64.b64encode(b"some-other-signing-key-32-bytes!").decode()
    with pytest.raises(AuthError):
        verify(_signed(scheme, other), _config(scheme))


@pytest.mark.parametrize("sent", [b" \n" + BODY.replace(b", ", b",  "),
                                  BODY.replace(b'"m-1"', b'"m\\u002d1"')],
                         ids=["trimmed", "compacted"])
def test_a_hub_body_signed_trimmed_or_compact_with_the_older_secret_says_so(sent: bytes) -> None:
    # Webex signs the body with its whitespace trimmed (or compact): those tries report too.
    signed = _signed("hub-signature", OLD, body=orjson.dumps(orjson.loads(BODY)))
    request = SignedRequest(method="POST", url=URL, query=QUERY, headers=signed.headers,
                            body=sent, now=time.time())
    assert verify(request, _config("hub-signature")) == 1


def test_the_older_password_with_another_username_is_refused() -> None:
    headers = sign("basic", OLD, url=URL, body=BODY, username="someone-else")
    request = SignedRequest(method="POST", url=URL, query="", headers=headers, body=BODY,
                            now=time.time())
    with pytest.raises(AuthError, match="wrong username or password"):
        verify(request, _config("basic"))


def _older_secret_count(account: str) -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_older_secret_total",
                                     {"provider": "infobip", "account": account}) or 0.0


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_ingest_counts_only_the_requests_the_older_secret_authenticated(
        scheme: str) -> None:
    account = f"rot-{scheme}"
    url = f"https://hooks.example/webhooks/infobip/{account}?{QUERY}"
    config: dict[str, Any] = {"scheme": _scheme(scheme), "secrets": [NEW, OLD],
                              "username": "u"}
    accounts = parse_accounts({"accounts": {account: {"provider": "infobip", "auth": config}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    app.state.handler.producer = KeepingProducer()
    before = _older_secret_count(account)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        for number, secret in enumerate((NEW, OLD, NEW)):
            body = BODY.replace(b"m-1", f"m-{number}".encode())  # not a repeat of the one before
            if scheme == "token-url":
                target, headers = f"{url}&token={secret}", {}
            else:
                headers = sign(config["scheme"], secret, url=url, body=body, query=QUERY,
                               username="u")
                target = url
            response = await client.post(target, content=body,
                                         headers={**headers, "content-type": "application/json"})
            assert response.status_code == 200, response.text
    assert _older_secret_count(account) == before + 1
