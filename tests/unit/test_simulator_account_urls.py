"""The simulator posts an account's webhooks to its ingest URL with the account's name
percent-encoded, as the sender writes it in the URLs it gives providers: `acme#1` sent as is
was cut at the `#` (a fragment), ingest answered 404 four times and the webhook was dropped.
Real HTTP on 127.0.0.1."""

from __future__ import annotations

from simulator.base import Webhook
from simulator.webhooks import Job, RetryPolicy, WebhookDispatcher
from switchboard.accounts import parse_accounts
from tests.polling import until
from tests.unit.webhook_servers import answering, dispatching

NAMES = ["acme#1", "acme?x", "café 2", "100%"]
ACCOUNTS = parse_accounts({"accounts": {name: {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}
    for name in NAMES}})


def test_the_url_names_the_account_percent_encoded() -> None:
    dispatcher = WebhookDispatcher("http://127.0.0.1:8080/")
    assert (dispatcher.url_for("ubiqio", "acme#1")
            == "http://127.0.0.1:8080/webhooks/ubiqio/acme%231")
    assert dispatcher.url_for("ubiqio", "café 2") == (
        "http://127.0.0.1:8080/webhooks/ubiqio/caf%C3%A9%202")


async def test_each_account_s_webhook_reaches_its_own_path() -> None:
    async with (
        answering() as (ingest_url, ingest),
        dispatching(ingest_url, retry=RetryPolicy(attempts=1, timeout_s=10)) as dispatcher,
    ):
        for name in NAMES:
            account = ACCOUNTS.get("ubiqio", name)
            assert account is not None
            hook = Webhook(kind="status:sent", body=b"{}")
            dispatcher.enqueue(Job("ubiqio", account, (hook,), 0.0))
        assert await until(lambda: len(ingest.requests) == len(NAMES))
    paths = sorted(path.partition("?")[0] for path, _ in ingest.requests)
    assert paths == sorted(["/webhooks/ubiqio/acme%231", "/webhooks/ubiqio/acme%3Fx",
                            "/webhooks/ubiqio/caf%C3%A9%202", "/webhooks/ubiqio/100%25"])
