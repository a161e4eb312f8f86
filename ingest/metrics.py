"""Prometheus metrics of the ingest service (served on GET /metrics).

Label values are bounded: providers are a fixed set and accounts come from the accounts file;
requests for unknown accounts, and those no route takes (outcome no_route or
method_not_allowed), are counted under account="unknown". Refused requests are counted one by
one, and logged once per kind and minute (switchboard.throttle).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram, disable_created_metrics

from switchboard.accounts import Account

# No `<name>_created` gauge beside each counter and histogram series: Prometheus stores it as one
# more series (twice the series of every label set declared at zero), and needs none of them to
# see a counter reset. `serve --workers N` (multiprocess mode) never had them; now no process
# has. Read at each scrape, so once per process, before any, is enough (the workers' too:
# consumers.worker_metrics).
disable_created_metrics()  # type: ignore[no-untyped-call]

REQUESTS = Counter(
    "switchboard_ingest_requests_total",
    "Webhook requests by provider, account and outcome",
    ["provider", "account", "outcome"],
)
EVENTS = Counter(
    "switchboard_ingest_events_total",
    "Normalized events published, by type and status",
    ["provider", "type", "status"],
)
PUBLISH_SECONDS = Histogram(
    "switchboard_ingest_publish_seconds",
    "Time from handing a request's records to Kafka until all are acknowledged",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DUPLICATES = Counter(
    "switchboard_ingest_duplicates_total",
    "Exact repeats of a recently stored webhook, answered without publishing again",
    ["provider", "account"],
)
DEAD_LETTERS = Counter(
    "switchboard_ingest_dead_letters_total",
    "Authenticated webhooks that could not be normalized (kept on the dead-letter topic)",
    ["provider", "account"],
)


# labels() hashes its arguments on every call; the hot path reuses the children instead.
_request_children: dict[tuple[str, str, str], Any] = {}
_event_children: dict[tuple[str, str, str], Any] = {}


def count_request(provider: str, account: str, outcome: str) -> None:
    key = (provider, account, outcome)
    child = _request_children.get(key)
    if child is None:
        child = _request_children[key] = REQUESTS.labels(provider, account, outcome)
    child.inc()


# Created at zero for every configured account at start-up (declare_accounts): a labelled
# counter has no series until its first increment, so an alert on it had nothing to see (and
# rate() missed that first increment). Only the outcomes an operator alerts on: all eleven an
# account's requests can have, times every account, would mostly be series that stay at zero.
ALERTED_OUTCOMES = ("stored", "duplicate", "dead_letter", "unauthorized", "unavailable",
                    "error")


def declare_accounts(accounts: Iterable[Account]) -> None:
    """Start these accounts' series at zero, so they are scraped before their first event; and
    one per provider of a webhook for an account not configured (a new account's URL given to
    the provider before the restart that loads it). The older-secret series only for accounts
    listing two secrets: both alerts of a rotation ("the old secret is still used", "it is no
    longer used") need it, elsewhere it could only stay at zero."""
    # labels() makes each child once, and count_request's cache takes the same one later.
    for account in accounts:
        provider, name = account.provider, account.name
        for outcome in ALERTED_OUTCOMES:
            REQUESTS.labels(provider, name, outcome)
        REQUESTS.labels(provider, "unknown", "unknown_account")
        DUPLICATES.labels(provider, name)
        DEAD_LETTERS.labels(provider, name)
        if len(account.auth.secrets) > 1:
            OLDER_SECRET.labels(provider, name)


def count_event(provider: str, type_: str, status: str) -> None:
    key = (provider, type_, status)
    child = _event_children.get(key)
    if child is None:
        child = _event_children[key] = EVENTS.labels(provider, type_, status)
    child.inc()


# Not an outcome of switchboard_ingest_requests_total: the request was counted when answered.
UNREAD_BODIES = Counter(
    "switchboard_ingest_unread_bodies_total",
    "Connections closed because the body of a request answered without reading it (a 404, a "
    "401 on a header, a 413) was still arriving SWITCHBOARD_BODY_TIMEOUT_S after the answer",
)


# Tells an operator rotating a secret whether the provider still signs with the old one. Counted
# only on that rare path: a request matching the first secret (every request, outside a
# rotation) pays nothing for it. Labelled by account, never by anything of the secret.
OLDER_SECRET = Counter(
    "switchboard_ingest_older_secret_total",
    "Webhook requests accepted with a secret other than the account's first (an old one "
    "during a rotation)",
    ["provider", "account"],
)
