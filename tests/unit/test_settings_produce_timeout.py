"""SWITCHBOARD_PRODUCE_TIMEOUT_S above the time Webex Connect waits: a warning at ingest's
start, not a refusal."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ingest.app import create_app
from switchboard.accounts import parse_accounts
from switchboard.settings import PROVIDER_GIVES_UP_S, Settings

NOWHERE = "127.0.0.1:1"  # nothing listens: the app starts all the same


async def _started(produce_timeout_s: float, caplog: pytest.LogCaptureFixture
                   ) -> list[dict[str, Any]]:
    caplog.set_level(logging.INFO)
    app = create_app(Settings(kafka_bootstrap_servers=NOWHERE,
                              produce_timeout_s=produce_timeout_s), parse_accounts({}))
    async with app.router.lifespan_context(app):
        pass
    return [r.msg for r in caplog.records if isinstance(r.msg, dict)
            and str(r.msg["event"]).startswith("SWITCHBOARD_PRODUCE_TIMEOUT_S")]


async def test_a_produce_timeout_webex_does_not_wait_for_is_warned_of(
        caplog: pytest.LogCaptureFixture) -> None:
    # Nothing said so: every webhook Kafka was slow to take was given up on by Webex Connect
    # (and sent again) before its 503, with no hint why.
    [warning] = await _started(15, caplog)
    assert warning["produce_timeout_s"] == 15
    assert warning["provider_gives_up_s"] == PROVIDER_GIVES_UP_S
    assert "Webex Connect" in warning["event"]


async def test_a_produce_timeout_within_webexs_wait_says_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    assert await _started(PROVIDER_GIVES_UP_S, caplog) == []
