"""A sender killed with work in flight, then restarted, never sends a command twice."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from consumers.ledger import decode_ledger
from switchboard.commands import OutboundCommand
from switchboard.records import command_record
from switchboard.topics import OUTBOUND, OUTBOUND_RESULTS, OUTBOUND_SENT, partitions_of
from tests.accounts_toml import accounts_toml
from tests.integration.stack import (
    E2E_ACCOUNT_NAMES,
    Stack,
    command_for,
    results_for,
    running_stack,
)
from tests.kafka_helpers import Offsets, TopicWatcher, collect_until, publish


def same_partition_as(key: bytes | None, provider: str, count: int) -> OutboundCommand:
    """A command for `provider` whose record lands on the same outbound partition as `key`."""
    partitioner = DefaultPartitioner()
    partitions = list(range(count))
    wanted = partitioner(key, partitions, partitions)
    for _ in range(1000):
        command = command_for(provider)
        command = command.model_copy(update={"to": f"+4179{uuid.uuid4().int % 10**7:07d}"})
        if partitioner(command_record(command, provider).key, partitions, partitions) == wanted:
            return command
    raise AssertionError("no command found for that partition")


def ledger_states(found: dict[str, list[Any]], command_id: str) -> list[str]:
    """The sender's ledger marks for one command, in the order it wrote them."""
    return [decode_ledger(record.value).state for record in found.get(OUTBOUND_SENT.name, [])
            if record.key == command_id.encode()]


def _sender_starter(stack: Stack, kafka_bootstrap: str, tmp_path: Path,
                    accounts: dict[str, Any] | None = None
                    ) -> Callable[[], subprocess.Popen[bytes]]:
    """Starts `switchboard worker sender` as its own process, on the stack's accounts (or
    `accounts`)."""
    accounts_file = tmp_path / "accounts.toml"
    accounts_file.write_text(accounts_toml(accounts or stack.accounts_data))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "SWITCHBOARD_KAFKA_NAME_PREFIX": stack.prefix,
           "SWITCHBOARD_ACCOUNTS_FILE": str(accounts_file),
           "SWITCHBOARD_PUBLIC_URL": stack.ingest.base_url, "SWITCHBOARD_LOG_FORMAT": "json"}

    def start_sender() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "switchboard.cli", "worker", "sender"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return start_sender


async def test_sender_killed_mid_batch_never_sends_a_command_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    async with running_stack(kafka_bootstrap, workers=()) as stack:
        start_sender = _sender_starter(stack, kafka_bootstrap, tmp_path)

        # Same partition, different conversations: `fast` (after `slow`) completes, but the
        # partition's commit cannot pass `slow`, which is still in flight at the provider.
        slow = command_for("bird")
        count = len(await partitions_of(stack.kafka(), OUTBOUND.name))
        fast = same_partition_as(command_record(slow, "bird").key, "infobip", count)
        await stack.control("POST", "faults", {"account": slow.account, "mode": "slow",
                                               "delay_s": 30, "count": 1})
        async with stack.watching((OUTBOUND_RESULTS.name,)) as watcher:
            before = await watcher.snapshot()
            sender = start_sender()
            try:
                await publish(stack.kafka(), [command_record(slow, "bird"),
                                                command_record(fast, "infobip")])
                # Both reached the provider: one answered, one still waiting for its answer.
                for _ in range(300):
                    got = {s["correlation_id"] for a in (fast.account, slow.account)
                           for s in await stack.sends(a)}
                    if {fast.id, slow.id} <= got:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the sender never sent both commands")
                await collect_until(watcher, before, lambda f: bool(results_for(f, fast.id)))
                sender.send_signal(signal.SIGKILL)  # neither offset is committed yet
                sender.wait(30)
                await stack.control("DELETE", "faults")

                sender = start_sender()
                found = await collect_until(
                    watcher, before,
                    lambda f: bool(results_for(f, slow.id)) and len(results_for(f, fast.id)) >= 2)
            finally:
                sender.terminate()
                sender.wait(30)

        receipts = [s["correlation_id"] for a in (fast.account, slow.account)
                    for s in await stack.sends(a)]
        assert receipts.count(fast.id) == 1 and receipts.count(slow.id) == 1
        assert {r["status"] for r in results_for(found, fast.id)} == {"accepted"}
        [unknown] = results_for(found, slow.id)
        assert unknown["status"] == "failed"
        assert unknown["error"]["code"] == "outcome_unknown"


async def _until_the_provider_refused(stack: Stack) -> None:
    """Until the simulator's one fault (a 429) is used up: the sender's first call refused."""
    for _ in range(300):
        if not (await stack.control("GET", "faults")).json()["faults"]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the sender never called the provider")


# How a test interrupts the sender once the provider refused its command: its process, and
# what it watches the command's records with.
Interrupt = Callable[[subprocess.Popen[bytes], TopicWatcher, Offsets, OutboundCommand],
                     Awaitable[None]]


async def _interrupted_during_a_429(
    kafka_bootstrap: str, tmp_path: Path, retry_after_s: float, interrupt: Interrupt
) -> tuple[dict[str, list[Any]], dict[str, list[Any]], OutboundCommand, list[dict[str, Any]]]:
    """A command the provider refuses once with a 429 (Retry-After `retry_after_s`), its sender
    interrupted while it waits to retry, then another sender started: what was written by the
    interrupt, what by the end, the command, and the provider's receipts of it."""
    async with running_stack(kafka_bootstrap, workers=()) as stack:
        start_sender = _sender_starter(stack, kafka_bootstrap, tmp_path)
        command = command_for("infobip")
        await stack.control("POST", "faults", {"account": command.account, "mode": "http_429",
                                               "count": 1, "retry_after_s": retry_after_s})
        async with stack.watching((OUTBOUND_RESULTS.name, OUTBOUND_SENT.name)) as watcher:
            before = await watcher.snapshot()
            sender = start_sender()
            try:
                await publish(stack.kafka(), [command_record(command, "infobip")])
                await _until_the_provider_refused(stack)
                await interrupt(sender, watcher, before, command)
                interrupted = await watcher.records_since(before)

                sender = start_sender()
                found = await collect_until(watcher, before,
                                            lambda f: bool(results_for(f, command.id)))
            finally:
                sender.terminate()
                sender.wait(30)
        receipts = [s for s in await stack.sends(command.account)
                    if s["correlation_id"] == command.id]
    return interrupted, found, command, receipts


async def test_sender_stopped_while_waiting_to_retry_leaves_the_command_to_the_next_one(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # A deploy during a provider's 429: the command was refused, so it is handed back unsent
    # (the ledger says "released") rather than waited for or reported outcome_unknown.
    async def stop(sender: subprocess.Popen[bytes], *_: object) -> None:
        sender.send_signal(signal.SIGTERM)
        # The bound only keeps a stuck sender from hanging the test: whether it waited out the
        # Retry-After shows in what it wrote (a retry after the wait succeeds, the fault being
        # used up, and would leave "sent" and a result).
        assert await asyncio.to_thread(sender.wait, 60) == 0

    stopped, found, command, receipts = await _interrupted_during_a_429(
        kafka_bootstrap, tmp_path, 30, stop)
    assert not results_for(stopped, command.id)
    assert ledger_states(stopped, command.id) == ["pending", "released"]
    [result] = results_for(found, command.id)
    assert result["status"] == "accepted"
    assert len(receipts) == 1


async def test_sender_killed_while_waiting_to_retry_leaves_the_command_to_the_next_one(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # A crash (OOM kill, SIGKILL past a pod's grace) during a provider's 429: the command was
    # refused and is waiting for the Retry-After, so the provider has nothing. It was left
    # "pending" and the next sender reported it outcome_unknown, a message never sent.
    # Retry-After 120 s: the killed sender cannot have retried it before the kill.
    async def kill(sender: subprocess.Popen[bytes], watcher: TopicWatcher, before: Offsets,
                   command: OutboundCommand) -> None:
        deadline = time.monotonic() + 10  # the refusal read, the wait begun
        while time.monotonic() < deadline:
            marks = ledger_states(await watcher.records_since(before), command.id)
            if marks[-1:] == ["released"]:
                break
            await asyncio.sleep(0.1)
        sender.send_signal(signal.SIGKILL)
        sender.wait(30)

    killed, found, command, receipts = await _interrupted_during_a_429(
        kafka_bootstrap, tmp_path, 120, kill)
    assert not results_for(killed, command.id)
    [result] = results_for(found, command.id)
    assert result["status"] == "accepted", result
    assert ledger_states(killed, command.id) == ["pending", "released"]
    assert len(receipts) == 1


async def test_sender_killed_while_a_command_waits_for_the_rate_limit_leaves_it_unsent(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # A backlog behind an account's rate limit at a crash (SIGKILL, OOM): the commands waiting
    # for it had been marked pending before the wait, and the next sender reported each
    # outcome_unknown, none of them sent.
    async with running_stack(kafka_bootstrap, workers=()) as stack:
        # One send, then the next a minute later. The stack's commands topic is this test's
        # alone (running_stack): no other test's command left unsent can take the one token.
        first = command_for("infobip")
        accounts = copy.deepcopy(stack.accounts_data)
        accounts[first.account]["outbound"].update(rate_per_s=1 / 60, burst=1)
        # The same conversation: handled one after the other, so the first takes the token.
        # In two, either could (their partitions are read in any order).
        waiting = first.model_copy(update={"id": f"{first.id}-2"})
        start_sender = _sender_starter(stack, kafka_bootstrap, tmp_path, accounts)
        async with stack.watching((OUTBOUND_RESULTS.name, OUTBOUND_SENT.name)) as watcher:
            before = await watcher.snapshot()
            sender = start_sender()
            try:
                await publish(stack.kafka(), [command_record(first, "infobip"),
                                                command_record(waiting, "infobip")])
                await collect_until(watcher, before, lambda f: bool(results_for(f, first.id)))
                await asyncio.sleep(1)  # the second one is handled, waiting for its token
                sender.send_signal(signal.SIGKILL)
                sender.wait(30)
                killed = await watcher.records_since(before)

                sender = start_sender()  # its bucket full: the second is sent at once
                found = await collect_until(watcher, before,
                                            lambda f: bool(results_for(f, waiting.id)))
            finally:
                sender.terminate()
                sender.wait(30)
        assert not results_for(killed, waiting.id)
        assert ledger_states(killed, first.id) == ["pending", "sent"]
        assert ledger_states(killed, waiting.id) == []
        [result] = results_for(found, waiting.id)
        assert result["status"] == "accepted", result
        # The simulator knows the account by its credentials: the e2e account's.
        receipts = [s["correlation_id"] for s in await stack.sends(E2E_ACCOUNT_NAMES["infobip"])]
        assert receipts.count(first.id) == 1 and receipts.count(waiting.id) == 1


async def test_sender_stopped_during_a_long_provider_call_stops_within_its_grace(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # An account whose calls may take a minute (timeout_s 60), one in flight at SIGTERM: the
    # stop waited for it in full, past a Kubernetes pod's 30 s, whose SIGKILL then left it
    # pending, and everything done since the last commit uncommitted.
    async with running_stack(kafka_bootstrap, workers=()) as stack:
        command = command_for("infobip")
        accounts = copy.deepcopy(stack.accounts_data)
        accounts[command.account]["outbound"]["timeout_s"] = 60
        start_sender = _sender_starter(stack, kafka_bootstrap, tmp_path, accounts)
        await stack.control("POST", "faults", {"account": command.account, "mode": "slow",
                                               "delay_s": 45, "count": 1})
        async with stack.watching((OUTBOUND_RESULTS.name, OUTBOUND_SENT.name)) as watcher:
            before = await watcher.snapshot()
            sender = start_sender()
            try:
                await publish(stack.kafka(), [command_record(command, "infobip")])
                for _ in range(300):  # until the provider has it, and takes its time to answer
                    if any(s["correlation_id"] == command.id
                           for s in await stack.sends(command.account)):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the sender never called the provider")
                signalled = time.monotonic()
                sender.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(sender.wait, 40) == 0
                took_s = time.monotonic() - signalled
                stopped = await collect_until(watcher, before,
                                              lambda f: bool(results_for(f, command.id)))
            finally:
                sender.terminate()
                sender.wait(30)
        assert took_s < 25  # the grace (15 s), then the commit
        [result] = results_for(stopped, command.id)
        assert (result["status"], result["error"]["code"]) == ("failed", "outcome_unknown")
        assert ledger_states(stopped, command.id) == ["pending", "failed"]
        receipts = [s for s in await stack.sends(command.account)
                    if s["correlation_id"] == command.id]
        assert len(receipts) == 1
