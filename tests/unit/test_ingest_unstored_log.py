"""While Kafka stores nothing, every webhook is answered 503: each is counted, but logged once
a minute per account (with how many more at the minute's end), not a line per request."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from ingest.app import create_app
from ingest.signing import sign
from switchboard.accounts import parse_accounts
from switchboard.producer import PublishError
from switchboard.settings import Settings

REPORT = (b'{"results": [{"messageId": "m-%d", "to": "41793026727", '
          b'"status": {"groupName": "DELIVERED"}}]}')
HEADERS = sign("basic", "ib-new-secret", url="", body=b"", username="ib") | {
    "content-type": "application/json"}


class AwayProducer:
    """Kafka away: every publish fails, as DurableProducer's does then."""

    started = True

    async def publish(self, records: list[Any]) -> None:
        raise PublishError("Kafka did not acknowledge within 5.0s")

    async def stop(self) -> None:
        self.started = False


async def test_the_503s_of_an_outage_are_logged_once_per_account_and_all_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    name = f"away-{uuid.uuid4().hex[:12]}"
    accounts = parse_accounts({"accounts": {name: {"provider": "infobip", "auth": {
        "scheme": "basic", "username": "ib", "secrets": ["ib-new-secret"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    handler = app.state.handler
    handler.producer = AwayProducer()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingest") as client:
        for number in range(5):
            answer = await client.post(f"/webhooks/infobip/{name}", headers=HEADERS,
                                       content=REPORT % number)
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "5"
    handler.refusals.flush()  # the minute's end

    lines = [r.msg for r in caplog.records if isinstance(r.msg, dict)
             and r.msg.get("account") == name]
    said = [line["event"] for line in lines]
    assert said == ["webhook not stored, answering 503",
                    "webhook not stored, answering 503: 4 more in the last 60 s"], said
    assert lines[0]["reason"] == "Kafka did not acknowledge within 5.0s"
    assert REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": "infobip", "account": name, "outcome": "unavailable"}) == 5.0
