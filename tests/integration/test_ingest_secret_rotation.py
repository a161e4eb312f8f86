"""A secret rotation seen from /metrics: the requests the older secret still authenticates are
counted, so an operator sees when the provider has switched and the old one can go."""

from __future__ import annotations

import uuid

import httpx

from ingest.signing import sign
from switchboard.accounts import parse_accounts
from tests.integration.conftest import start_ingest
from tests.integration.webhooks import infobip_report

NEW, OLD = "rotation-new-secret", "rotation-old-secret"
ACCOUNTS = {
    # Header credentials (checked before the body is read) and a signature over the request.
    "it-rotating": {"provider": "infobip", "auth": {"scheme": "basic", "username": "rot",
                                                   "secrets": [NEW, OLD]}},
    "it-rotating-bird": {"provider": "bird", "auth": {"scheme": "bird-signature",
                                                      "secrets": [NEW, OLD]}},
}


def _older_secret_count(metrics: str, provider: str, account: str) -> float:
    sample = f'switchboard_ingest_older_secret_total{{account="{account}",provider="{provider}"}} '
    found = [line for line in metrics.splitlines() if line.startswith(sample)]
    return float(found[0].removeprefix(sample)) if found else 0.0


async def test_requests_the_older_secret_authenticated_are_counted_on_metrics(
        kafka_bootstrap: str) -> None:
    server, task = await start_ingest(kafka_bootstrap, parse_accounts({"accounts": ACCOUNTS}))
    counts: list[tuple[float, float]] = []
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for secret in (NEW, OLD, NEW, OLD):
                infobip = await client.post(
                    server.url("infobip", "it-rotating"),
                    content=infobip_report(f"rotation-{uuid.uuid4()}"),
                    headers=sign("basic", secret, url="", body=b"", username="rot")
                    | {"content-type": "application/json"})
                query = (f"id={uuid.uuid4().hex}&reference=ref-rotation&recipient=31612345678"
                         "&status=delivered&statusDatetime=2026-01-11T09%3A17%3A11%2B00%3A00")
                url = f"{server.url('bird', 'it-rotating-bird')}?{query}"
                bird = await client.get(url, headers=sign("bird-signature", secret, url=url,
                                                          body=b"", query=query))
                assert (infobip.status_code, bird.status_code) == (200, 200), bird.text
                metrics = (await client.get(f"{server.base_url}/metrics")).text
                counts.append((_older_secret_count(metrics, "infobip", "it-rotating"),
                               _older_secret_count(metrics, "bird", "it-rotating-bird")))
    finally:
        server.server.should_exit = True
        await task
    # Each request signed with the old secret counted once; those with the new one not at all.
    assert counts == [(0, 0), (1, 1), (1, 1), (2, 2)]
    assert NEW not in metrics and OLD not in metrics
