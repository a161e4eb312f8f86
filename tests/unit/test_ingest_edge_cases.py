"""Edge cases of the ingest path that once went wrong: recipients of one legacy MessageBird
message, URLs with a trailing slash, bodies too large for the raw topic, and Basic accounts
without a user name, and a bug's 500 (a query that is not UTF-8: test_ingest_headers)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from ingest.app import create_app
from ingest.signing import sign
from ingest.stored import fitted_raw
from normalizers import WebhookRequest, normalize
from switchboard.accounts import AccountsError, AuthConfig, parse_accounts
from switchboard.records import raw_envelope
from switchboard.settings import Settings
from switchboard.topics import RAW
from tests.fakes import KeepingProducer
from tests.fixtures import ACCOUNT, RAW_ID, RECEIVED_AT


async def _call(app: Any, method: str, raw_path: bytes, headers: dict[str, str],
                body: bytes = b"", query: bytes = b"") -> tuple[int, dict[str, str]]:
    """One request straight through the ASGI app (no HTTP client): status and headers."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "https", "server": ("10.0.0.5", 443), "root_path": "",
        "path": raw_path.decode(), "raw_path": raw_path, "query_string": query,
        "headers": [(b"host", b"hooks.example"),
                    *((k.encode(), v.encode()) for k, v in headers.items())],
    }
    sent = False
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}

    await app(scope, receive, send)
    return answer["status"], answer["headers"]


def _app(accounts: dict[str, Any]) -> tuple[Any, KeepingProducer]:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"),
                     parse_accounts({"accounts": accounts}))
    producer = KeepingProducer()
    app.state.handler.producer = producer
    return app, producer


# --- event ids: one MessageBird message, several recipients ------------------------------


def test_legacy_messagebird_reports_for_two_recipients_of_one_message_get_distinct_ids() -> None:
    # The legacy SMS API sends one message (one `id`) to a list of recipients and reports each
    # recipient's status separately. A bulk send's `sent` reports carry the same second: the
    # two reports below are different facts, but got one event id, so a consumer that
    # deduplicates on `id` (as docs/events.md says to) dropped the second recipient's report.
    def report(recipient: str) -> WebhookRequest:
        query = (f"id=b6aae1b5dfb2427a8f7ea6a717ba31a9&recipient={recipient}&status=sent"
                 "&statusDatetime=2023-07-28T17%3A57%3A12%2B00%3A00&reference=ref-1")
        return WebhookRequest(provider="bird", account=ACCOUNT, body=b"",
                              received_at=RECEIVED_AT, raw_id=RAW_ID, content_type="",
                              query=query, method="GET")

    first, = normalize(report("31612345678"))
    second, = normalize(report("31687654321"))
    assert first.to != second.to
    assert first.id != second.id
    # ... and a retried report still keeps its id.
    again, = normalize(report("31612345678"))
    assert again.id == first.id


# --- a webhook URL with a trailing slash ----------------------------------------------------


async def test_a_webhook_url_with_a_trailing_slash_is_served_not_redirected() -> None:
    # Starlette answered 307 to `/webhooks/<provider>/<account>/`, pointing at the scheme and
    # host ingest sees (http:// behind a TLS proxy). Webex never retries a 3xx (nor accepts
    # one when it checks a URL with HEAD), and Bird signs the URL with its slash.
    app, producer = _app({
        "acme": {"provider": "infobip",
                 "auth": {"scheme": "basic", "username": "u", "secrets": ["password-123"]}},
        "bs": {"provider": "bird",
               "auth": {"scheme": "bird-signature", "secrets": ["signing-key-123"]}},
    })
    basic = {"authorization": "Basic " + base64.b64encode(b"u:password-123").decode(),
             "content-type": "application/json"}
    body = b'{"results": []}'
    for path in (b"/webhooks/infobip/acme/", b"/webhooks/infobip/acme/dlr/"):
        status, headers = await _call(app, "POST", path, basic, body)
        assert (status, headers.get("location")) == (200, None), path
        status, _ = await _call(app, "HEAD", path, {})
        assert status == 200, path

    bird = (b'{"service":"channels","event":"sms.inbound","payload":{"id":"m1",'
            b'"sender":{"contact":{"identifierValue":"+31612345678"}},'
            b'"body":{"type":"text","text":{"text":"hi"}}}}')
    url = "https://hooks.example/webhooks/bird/bs/"  # as given to Bird, slash included
    signed = sign("bird-signature", "signing-key-123", url=url, body=bird)
    status, _ = await _call(app, "POST", b"/webhooks/bird/bs/",
                            {**signed, "content-type": "application/json"}, bird)
    assert status == 200
    assert any(record.topic == "switchboard.message.inbound.v1"
               for record in producer.published)


@pytest.mark.parametrize("path", [b"/webhooks/infobip/acme//", b"/webhooks/infobip/acme/dlr//",
                                  b"/healthz/", b"/readyz/"])
@pytest.mark.parametrize("query", [b"", b"id=\xff"])
async def test_a_path_one_slash_off_a_route_is_a_json_404_not_a_redirect(
        path: bytes, query: bytes) -> None:
    # Starlette redirected it (307, which no provider follows and nothing logged), and answered
    # 500 in plain text when the query was not UTF-8: building the redirect decodes it.
    app, producer = _app({"acme": {"provider": "infobip", "auth": {
        "scheme": "basic", "username": "u", "secrets": ["password-123"]}}})
    basic = {"authorization": "Basic " + base64.b64encode(b"u:password-123").decode()}
    for method in ("POST", "GET"):
        status, headers = await _call(app, method, path, basic, b"{}", query=query)
        assert (status, headers.get("location")) == (404, None), (method, path, query)
        assert headers["content-type"] == "application/json"
    assert not producer.published


# --- configuration that cannot work -----------------------------------------------------------


def test_the_largest_body_the_settings_allow_fits_the_raw_topic() -> None:
    # SWITCHBOARD_MAX_BODY_BYTES had no upper bound. A body the raw topic (2 MiB) cannot hold
    # even in base64 passed the size check, and Kafka refused its raw record on every retry:
    # 503 for ever, where the README says every body under the size cap can be stored.
    bound = next((getattr(m, "le", None) for m in Settings.model_fields["max_body_bytes"].metadata
                  if getattr(m, "le", None) is not None), None)
    assert bound is not None, "max_body_bytes needs an upper bound"
    with pytest.raises(ValidationError):
        Settings(max_body_bytes=bound + 1)
    body = bytes(range(256)) * (bound // 256) + b"\xff" * (bound % 256)  # not UTF-8: base64
    envelope = raw_envelope(raw_id="r", provider="ubiqio", account="a", method="POST",
                            path="/webhooks/ubiqio/" + "a" * 200, query="q=" + "x" * 4000,
                            content_type="application/json",
                            headers={"user-agent": "u" * 2000, "x-forwarded-for": "1" * 2000},
                            body=body, received_at=datetime.now(UTC))
    _, record = fitted_raw(envelope, datetime.now(UTC))
    assert len(record.value) <= RAW.max_message_bytes - 4096


async def test_a_request_kafka_could_never_take_gets_413_not_503() -> None:
    # Long headers and query next to a body near the cap: the raw record was over the raw
    # topic's limit, every publish failed, and the provider was told to retry for ever.
    app, producer = _app({"u": {"provider": "ubiqio",
                                "auth": {"scheme": "token", "header": "x-token",
                                         "secrets": ["token-123456"]}}})
    status, headers = await _call(app, "POST", b"/webhooks/ubiqio/u",
                                  {"x-token": "token-123456",
                                   "content-type": "application/json"},
                                  b"\xff" * 1_000_000, query=b"q=" + b"x" * 800_000)
    assert (status, headers["content-type"]) == (413, "application/json")
    assert producer.published == []


def test_a_basic_account_without_a_username_is_refused_at_load() -> None:
    # verify_basic compares the user name with `username or ""`: an account written without
    # one loaded fine and then refused every request its provider made (Infobip always sends
    # a user name), so the webhooks were lost after the provider's retries.
    with pytest.raises(ValidationError, match="username"):
        AuthConfig.model_validate({"scheme": "basic", "secrets": ["password-123"]})


@pytest.mark.parametrize("name", ["", "eu/acme", "acme\n", "tab\tname"])
def test_an_account_name_no_webhook_url_can_reach_is_refused_at_load(name: str) -> None:
    # The router splits the decoded path at '/': such an account loaded and then answered
    # 404 to every webhook its provider sent.
    accounts = {name: {"provider": "ubiqio", "auth": {"scheme": "token",
                                                       "secrets": ["token-123456"]}}}
    with pytest.raises(AccountsError, match="path segment of the webhook URL"):
        parse_accounts({"accounts": accounts})


# --- a bug's answer -----------------------------------------------------------------------------


class BrokenProducer(KeepingProducer):
    async def publish(self, records: list[Any]) -> None:
        raise RuntimeError("a bug, quoting internals: broker 10.0.3.7")


async def test_an_unexpected_error_is_answered_as_a_json_500_that_says_nothing_of_it() -> None:
    # Starlette answered a bug with a plain-text "Internal Server Error": the one answer that
    # was not the JSON every other refusal (and the README) promises.
    app, _ = _app({"acme": {"provider": "infobip", "auth": {
        "scheme": "basic", "username": "u", "secrets": ["password-123"]}}})
    app.state.handler.producer = BrokenProducer()
    before = REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": "infobip", "account": "acme", "outcome": "error"}) or 0.0
    async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="https://hooks.example") as client:
        response = await client.post(
            "/webhooks/infobip/acme", content=b'{"results": []}',
            headers={"authorization": "Basic " + base64.b64encode(b"u:password-123").decode(),
                     "content-type": "application/json"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "internal_error",
                               "message": "the webhook could not be handled; retry later"}
    assert REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": "infobip", "account": "acme", "outcome": "error"}) == before + 1


async def test_a_token_in_a_header_ingest_keeps_is_not_kept_with_the_raw_record() -> None:
    # An account may take its token in a header the raw record otherwise keeps (a proxy's
    # x-request-id): the secret must not reach the raw and dead-letter topics.
    accounts = parse_accounts({"accounts": {"ub": {"provider": "ubiqio", "auth": {
        "scheme": "token", "header": "X-Request-Id", "secrets": ["token-12345678"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        response = await client.post("/webhooks/ubiqio/ub", content=b"not a form {",
                                     headers={"x-request-id": "token-12345678",
                                              "content-type": "application/json",
                                              "user-agent": "kept-agent"})
    assert response.status_code == 400, response.text
    assert producer.published
    for record in producer.published:
        assert b"token-12345678" not in record.value
        assert b"token-12345678" not in base64.b64encode(record.value)
    raw = orjson.loads(producer.published[0].value)
    assert raw["headers"]["user-agent"] == "kept-agent"


async def test_a_url_check_carrying_only_the_accounts_url_token_is_answered_200() -> None:
    # An account authenticated by a token in its URL is given to the provider with it
    # (`?token=...`): the provider's check of that URL (a GET with no report) was taken for a
    # report, answered 400, and its empty body dead-lettered.
    app, producer = _app({"wx": {"provider": "webex", "auth": {
        "scheme": "token", "secrets": ["url-token-123"]}}})
    status, _ = await _call(app, "GET", b"/webhooks/webex/wx", {}, query=b"token=url-token-123")
    assert status == 200
    status, _ = await _call(app, "GET", b"/webhooks/webex/wx", {}, query=b"token=url-token-12")
    assert status == 401  # the URL given to the provider is wrong: saving it should fail
    assert producer.published == []
    # A GET with more than the token is a report, as before.
    status, _ = await _call(app, "GET", b"/webhooks/webex/wx", {},
                            query=b"token=url-token-123&status=x")
    assert status != 200 or producer.published


async def test_a_head_url_check_carrying_the_url_token_has_it_checked() -> None:
    # A provider checking its URL with HEAD got 200 for a mistyped token, as GET did not:
    # it saved the URL, and every webhook after was refused with 401.
    app, producer = _app({"wx": {"provider": "webex", "auth": {
        "scheme": "token", "secrets": ["url-token-123"]}}})
    for query, status in [(b"token=url-token-12", 401), (b"token=url-token-123", 200),
                          (b"token=url-token-123&x=1", 200), (b"x=1", 200), (b"", 200)]:
        assert (await _call(app, "HEAD", b"/webhooks/webex/wx", {}, query=query))[0] == status
    assert producer.published == []


def _url_checks(provider: str, account: str) -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": provider, "account": account, "outcome": "url_check"}) or 0.0


async def test_a_head_or_bare_get_url_check_is_counted() -> None:
    # Webex Connect checks a URL before saving it (HEAD, or GET without a query): answered 200,
    # but counted nowhere, so a provider's checks (or a mistyped URL) left no trace in metrics.
    app, producer = _app({"wx": {"provider": "webex", "auth": {
        "scheme": "token", "secrets": ["url-token-123"]}}})
    before = _url_checks("webex", "wx")
    assert (await _call(app, "HEAD", b"/webhooks/webex/wx", {}))[0] == 200
    assert (await _call(app, "GET", b"/webhooks/webex/wx/status", {}))[0] == 200
    assert _url_checks("webex", "wx") == before + 2
    assert producer.published == []


async def test_a_url_check_of_an_unknown_account_is_counted_without_its_name() -> None:
    app, _ = _app({"wx": {"provider": "webex", "auth": {
        "scheme": "token", "secrets": ["url-token-123"]}}})
    before = REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": "webex", "account": "unknown", "outcome": "unknown_account"}) or 0.0
    assert (await _call(app, "HEAD", b"/webhooks/webex/someone-else", {}))[0] == 404
    assert REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": "webex", "account": "unknown", "outcome": "unknown_account"}) == before + 1
    labels = {sample.labels["account"] for metric in REGISTRY.collect()
              if metric.name == "switchboard_ingest_requests" for sample in metric.samples}
    assert "someone-else" not in labels
