"""Stacks on the session's broker are installs of their own (running_stack): a command one
test leaves unsent is neither sent nor answered by a later test's sender, and is still there
for its own stack's sender."""

from __future__ import annotations

import asyncio

from consumers.workers import sender_worker
from switchboard.records import command_record
from switchboard.topics import OUTBOUND_RESULTS
from tests.integration.stack import command_for, results_for, running_stack
from tests.kafka_helpers import collect_until, publish


async def test_a_command_left_unsent_is_not_taken_by_a_later_stacks_sender(
        kafka_bootstrap: str) -> None:
    async with running_stack(kafka_bootstrap, workers=()) as earlier:
        # No sender: the command is left unsent, as by a test that failed or stopped first.
        left = command_for("infobip")
        await publish(earlier.kafka(), [command_record(left, "infobip")])

        async with running_stack(kafka_bootstrap) as later:
            # The same account name and conversation: on shared topics and group, the later
            # sender would reach `left` first (one partition, in order), and send it.
            own = command_for("infobip")
            async with later.watching((OUTBOUND_RESULTS.name,)) as watcher:
                before = await watcher.snapshot()
                await publish(later.kafka(), [command_record(own, "infobip")])
                found = await collect_until(watcher, before,
                                            lambda f: bool(results_for(f, own.id)))
            later_sends = [s["correlation_id"] for s in await later.sends(own.account)]
        assert results_for(found, left.id) == []
        assert own.id in later_sends and left.id not in later_sends

        # Its own stack's sender (a restart of that install) finds it and sends it.
        async with (sender_worker(earlier.settings, earlier.accounts) as runtime,
                    earlier.watching((OUTBOUND_RESULTS.name,)) as watcher):
            running = asyncio.create_task(runtime.run())
            try:
                found = await collect_until(watcher, await watcher.beginning(),
                                            lambda f: bool(results_for(f, left.id)))
            finally:
                runtime.stop()
                await asyncio.wait_for(running, 30)
        [result] = results_for(found, left.id)
        assert result["status"] == "accepted", result
        earlier_sends = [s["correlation_id"] for s in await earlier.sends(left.account)]
        assert earlier_sends.count(left.id) == 1
