"""The sender under provider faults: retries with backoff, permanent failures, no doubles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from switchboard.records import OutRecord, command_record
from switchboard.topics import OUTBOUND_RESULTS, partitions_of
from tests.integration.stack import Stack, command_for, results_for, running_stack
from tests.kafka_helpers import collect_until, publish


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap) as running:
        yield running


async def _result_of(stack: Stack, provider: str, fault: dict[str, Any] | None, *,
                     channel: str | None = None) -> tuple[dict[str, Any], int]:
    command = command_for(provider).model_copy(update={"channel": channel})
    if fault:
        response = await stack.control("POST", "faults", {"account": command.account, **fault})
        assert response.status_code < 300, response.text
    async with stack.watching((OUTBOUND_RESULTS.name,)) as watcher:
        before = await watcher.snapshot()
        await publish(stack.kafka(), [command_record(command, provider)])
        found = await collect_until(watcher, before, lambda f: bool(results_for(f, command.id)))
    [result] = results_for(found, command.id)
    receipts = [s for s in await stack.sends(command.account) if s["correlation_id"] == command.id
                or s["provider_message_id"] == result.get("provider_message_id")]
    return result, len(receipts)


@pytest.mark.parametrize("provider", ["infobip", "bird", "ubiqio"])
async def test_unavailable_is_retried_with_backoff_then_succeeds(provider: str,
                                                                 stack: Stack) -> None:
    result, receipts = await _result_of(stack, provider, {"mode": "http_503", "count": 2})
    assert result["status"] == "accepted"
    assert result["attempts"] == 3 and receipts == 1


@pytest.mark.parametrize("provider", ["bird", "webex"])
async def test_a_500_is_not_sent_again(provider: str, stack: Stack) -> None:
    # A 500 may come after the provider took the message: at most once wins over a retry.
    result, _ = await _result_of(stack, provider, {"mode": "http_500", "count": 1})
    assert result["status"] == "failed" and result["attempts"] == 1
    assert result["error"]["permanent"] is False
    assert "not sent again" in result["error"]["description"]


async def test_an_answer_that_comes_too_late_is_not_sent_again(stack: Stack) -> None:
    # The provider takes the message but answers after the client's 10 s timeout: sending it
    # again would deliver it twice.
    result, receipts = await _result_of(stack, "infobip",
                                        {"mode": "slow", "delay_s": 12, "count": 1})
    assert result["status"] == "failed" and result["error"]["code"] == "timeout"
    assert result["attempts"] == 1 and receipts == 1


async def test_429_is_retried_after_retry_after(stack: Stack) -> None:
    result, receipts = await _result_of(stack, "webex",
                                        {"mode": "http_429", "count": 1, "retry_after_s": 1})
    assert result["status"] == "accepted" and result["attempts"] == 2 and receipts == 1


@pytest.mark.parametrize("provider", ["infobip", "bird", "webex", "infobip-omnichat"])
async def test_permanent_error_gives_a_failed_result_without_retries(provider: str,
                                                                      stack: Stack) -> None:
    result, receipts = await _result_of(stack, provider, {"mode": "http_400", "count": 1})
    assert result["status"] == "failed" and result["attempts"] == 1 and receipts == 0
    assert result["error"]["permanent"] is True and result["error"]["description"]


async def test_an_infobip_reply_on_the_unknown_channel_is_refused_before_sending(
        stack: Stack) -> None:
    # A reply to an unlabelled per-channel inbound (Messenger without ?channel=) copies its
    # `unknown` channel: Infobip would answer UNKNOWN with a 400 that does not say the fix.
    result, receipts = await _result_of(stack, "infobip", None, channel="unknown")
    assert result["status"] == "failed" and result["attempts"] == 0 and receipts == 0
    assert result["error"]["code"] == "unsupported_content"
    assert result["error"]["permanent"] is True
    assert "?channel=<name>" in result["error"]["description"]


@pytest.mark.parametrize("provider", ["infobip", "infobip-omnichat", "bird", "webex", "ubiqio"])
async def test_a_refusal_in_a_2xx_gives_a_failed_result_without_retries(provider: str,
                                                                          stack: Stack) -> None:
    # Ubiqio's success: false was reported accepted: a refusal with a 2xx status is a failure,
    # with the provider's reason, and not a message that went out.
    result, receipts = await _result_of(stack, provider, {"mode": "rejected", "count": 1})
    assert result["status"] == "failed" and result["attempts"] == 1 and receipts == 0
    assert result.get("provider_message_id") is None
    if provider.startswith("infobip"):
        # The simulator's Infobip refusal is REJECTED_NOT_ENOUGH_CREDITS: the account's credit
        # spent, which a top-up lifts (not permanent), and which a retry seconds later would not.
        assert result["error"]["code"] == "REJECTED_NOT_ENOUGH_CREDITS"
        assert result["error"]["permanent"] is False
        assert "topped up" in result["error"]["description"]
    else:
        assert result["error"]["permanent"] is True


@pytest.mark.parametrize("mode", ["undeliverable", "expired"])
async def test_an_infobip_answer_with_a_final_undelivered_status_gives_a_failed_result(
        mode: str, stack: Stack) -> None:
    # An UNDELIVERABLE or EXPIRED status group in Infobip's 200 was reported accepted: both are
    # final, so the message will not be delivered.
    result, receipts = await _result_of(stack, "infobip", {"mode": mode, "count": 1})
    assert result["status"] == "failed" and result["attempts"] == 1 and receipts == 0
    assert result["error"]["permanent"] is True
    assert result["error"]["code"].startswith(mode.upper())


def _keys_on_each_partition(partitions: int) -> list[bytes]:
    """Keys the default partitioner spreads over every partition (as Kafka's Java one does)."""
    by_partition: dict[int, bytes] = {}
    for n in range(1000):
        key = f"copy-{n}".encode()
        by_partition.setdefault((murmur2(key) & 0x7FFFFFFF) % partitions, key)
    return list(by_partition.values())


async def test_copies_of_a_command_under_other_keys_are_sent_once(stack: Stack) -> None:
    # One copy per partition, the first provider call slow: handled where they landed, the
    # copies would be sent concurrently (or reported outcome_unknown). The sender re-keys them
    # into the conversation's partition, where each finds the one before it done.
    command = command_for("infobip")
    keyed = command_record(command, "infobip")
    copies = [OutRecord(keyed.topic, keyed.value, key, keyed.headers)
              for key in _keys_on_each_partition(await _partitions(stack, keyed.topic))]
    assert len(copies) > 1
    response = await stack.control("POST", "faults", {"account": command.account,
                                                      "mode": "slow", "delay_s": 2, "count": 1})
    assert response.status_code < 300, response.text
    async with stack.watching((OUTBOUND_RESULTS.name,)) as watcher:
        before = await watcher.snapshot()
        await publish(stack.kafka(), copies)
        found = await collect_until(
            watcher, before, lambda f: len(results_for(f, command.id)) == len(copies))
    results = results_for(found, command.id)
    assert {r["status"] for r in results} == {"accepted"}
    assert len({r["provider_message_id"] for r in results}) == 1
    receipts = [s for s in await stack.sends(command.account) if s["correlation_id"] == command.id]
    assert len(receipts) == 1


async def _partitions(stack: Stack, topic: str) -> int:
    return len(await partitions_of(stack.kafka(), topic))
