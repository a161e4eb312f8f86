"""The full loop per provider: command -> sender -> simulator -> webhook -> ingest -> events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from switchboard.records import command_record
from switchboard.topics import MESSAGE_STATUS, OUTBOUND_RESULTS
from tests.integration.stack import (
    E2E_ACCOUNT_NAMES,
    Stack,
    command_for,
    results_for,
    running_stack,
)
from tests.kafka_helpers import collect_until, publish

PROVIDERS = sorted(E2E_ACCOUNT_NAMES)


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap) as running:
        yield running


def statuses_for(found: dict[str, list[Any]], account: str) -> list[dict[str, Any]]:
    values = [orjson.loads(r.value) for r in found.get(MESSAGE_STATUS.name, [])]
    return [v for v in values if v["account"] == account]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_command_is_sent_and_its_delivery_comes_back_correlated(
    provider: str, stack: Stack
) -> None:
    command = command_for(provider)
    account = command.account
    topics = (OUTBOUND_RESULTS.name, MESSAGE_STATUS.name)
    async with stack.watching(topics) as watcher:
        before = await watcher.snapshot()
        await publish(stack.kafka(), [command_record(command, provider)])

        def delivered(found: dict[str, list[Any]]) -> bool:
            results = results_for(found, command.id)
            if not results:
                return False
            message_id = results[0]["provider_message_id"]
            return any(s["status"] == "delivered" and s["message_id"] == message_id
                       for s in statuses_for(found, account))

        found = await collect_until(watcher, before, delivered)

    [result] = results_for(found, command.id)
    assert result["status"] == "accepted" and result["provider_message_id"]
    assert result["account"] == account and result["to"] == command.to

    sends = [s for s in await stack.sends(account) if s["correlation_id"] == command.id
             or s["provider_message_id"] == result["provider_message_id"]]
    assert len(sends) == 1, "the provider received the command exactly once"

    events = [s for s in statuses_for(found, account)
              if s["message_id"] == result["provider_message_id"]]
    assert any(e["status"] == "delivered" for e in events)
    # Omnichat's reports carry no reference of ours: ingest correlates them via the results.
    assert all(e["correlation_id"] == command.id for e in events)
