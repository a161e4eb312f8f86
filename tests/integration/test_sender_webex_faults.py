"""The sender against the Webex simulator's faults: a gateway 503 is an HTTP 503 on the wire and
is retried; Webex's own internal error (code 7006 in an HTTP 200) may come after the message
was queued, so it is not sent again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.records import command_record
from switchboard.topics import OUTBOUND_RESULTS
from tests.integration.stack import Stack, command_for, results_for, running_stack
from tests.kafka_helpers import collect_until, publish


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap) as running:
        yield running


async def _webex_result(stack: Stack, fault: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The result of one Webex command sent under `fault`, and how many sends were taken."""
    command = command_for("webex")
    response = await stack.control("POST", "faults", {"account": command.account, **fault})
    assert response.status_code < 300, response.text
    async with stack.watching((OUTBOUND_RESULTS.name,)) as watcher:
        before = await watcher.snapshot()
        await publish(stack.kafka(), [command_record(command, "webex")])
        found = await collect_until(watcher, before, lambda f: bool(results_for(f, command.id)))
    [result] = results_for(found, command.id)
    taken = [s for s in await stack.sends(command.account) if s["correlation_id"] == command.id]
    return result, len(taken)


async def test_a_webex_503_is_retried_then_accepted(stack: Stack) -> None:
    result, taken = await _webex_result(stack, {"mode": "http_503", "count": 2})
    assert result["status"] == "accepted", result
    assert result["attempts"] == 3 and taken == 1


async def test_webex_internal_error_in_a_200_is_not_sent_again(stack: Stack) -> None:
    result, taken = await _webex_result(stack, {"mode": "internal_error_2xx", "count": 1})
    assert result["status"] == "failed" and result["attempts"] == 1 and taken == 0
    assert result["error"]["code"] == "7006" and result["error"]["permanent"] is False
    assert "not sent again" in result["error"]["description"]
