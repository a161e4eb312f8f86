"""An account's counters are scraped at zero from the start, not only after their first event:
an alert on `rate(...{outcome="unauthorized"}[5m])` or on dead letters had no series to look
at, and rate() cannot see a counter's first increment."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ingest.app import create_app
from ingest.metrics import ALERTED_OUTCOMES
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings


async def _scrape(app: object) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


async def test_a_fresh_apps_metrics_show_each_accounts_series_at_zero() -> None:
    # A name of its own: the registry is the process's, shared with every other test.
    name = f"fresh-{uuid.uuid4().hex[:12]}"
    accounts = parse_accounts({"accounts": {
        name: {"provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                               "secrets": ["password-123"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)

    scraped = await _scrape(app)  # before any webhook

    ours = {key: value for key, value in scraped.items()
            if ("account", name) in key[1]}
    expected = {("switchboard_ingest_requests_total",
                 frozenset({("provider", "infobip"), ("account", name), ("outcome", outcome)}))
                for outcome in ALERTED_OUTCOMES}
    expected |= {(metric, frozenset({("provider", "infobip"), ("account", name)}))
                 for metric in ("switchboard_ingest_duplicates_total",
                                "switchboard_ingest_dead_letters_total")}
    assert ours == dict.fromkeys(expected, 0.0)
    # The outcomes an operator alerts on: what is stored, and each way a webhook is lost.
    assert {"stored", "unauthorized", "dead_letter", "unavailable", "duplicate"} <= set(
        ALERTED_OUTCOMES)
    # A URL naming an account not configured (yet): one series per provider, not per name.
    assert ("switchboard_ingest_requests_total", frozenset(
        {("provider", "infobip"), ("account", "unknown"), ("outcome", "unknown_account")})
    ) in scraped


async def test_a_webhook_counts_on_the_series_declared_at_zero() -> None:
    """The zero child is the one the hot path increments (its cache is filled at start-up),
    not a second series of the same labels."""
    name = f"counted-{uuid.uuid4().hex[:12]}"
    accounts = parse_accounts({"accounts": {
        name: {"provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                               "secrets": ["password-123"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        answer = await client.post(f"/webhooks/infobip/{name}", content=b"{}",
                                   headers={"content-type": "application/json"})
    assert answer.status_code == 401
    key = ("switchboard_ingest_requests_total",
           frozenset({("provider", "infobip"), ("account", name), ("outcome", "unauthorized")}))
    assert (await _scrape(app))[key] == 1.0
