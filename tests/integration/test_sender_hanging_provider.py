"""A real sender worker and Kafka, sending for two accounts at two providers on 127.0.0.1: one
that stops answering, one that answers. The healthy provider's sends still go out, and the
hanging one's once it answers again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from consumers.sender import SENDER_CONCURRENCY, SENDS_IN_FLIGHT_PER_ORIGIN
from consumers.workers import sender_worker
from switchboard.accounts import Accounts, parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.records import command_record
from switchboard.settings import Settings
from switchboard.topics import OUTBOUND_RESULTS
from tests.integration.stack import StackWatcher, isolated_prefix, results_for, stack_topics
from tests.kafka_helpers import collect_until, publish
from tests.polling import until
from tests.provider_servers import Provider


def _accounts(names: dict[str, str]) -> Accounts:
    """An Infobip account per name, at its base_url; no rate limit in the way, 30 s before a
    hanging send times out."""
    return parse_accounts({"accounts": {name: {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "ib", "secrets": ["hanging-webhook-pass"]},
        "outbound": {"base_url": base_url, "api_key": "hanging-api-key", "sender": "InfoSMS",
                     "rate_per_s": 1000, "burst": 1000, "timeout_s": 30}}
        for name, base_url in names.items()}})


def _command(account: str, to: str) -> OutboundCommand:
    return OutboundCommand(id=f"cmd-{uuid.uuid4()}", account=account, to=to, text="Hello",
                           created_at=datetime.now(UTC))


async def test_a_hanging_provider_does_not_stall_another_providers_sends(
        kafka_bootstrap: str) -> None:
    # As many sends as the sender has slots, to a provider that never answered, held every
    # slot: a send to another provider waited for their timeout.
    tag = uuid.uuid4().hex[:8]
    stuck_account, healthy_account = f"stuck-{tag}", f"healthy-{tag}"
    async with Provider(hang=True).running() as stuck, Provider().running() as healthy:
        accounts = _accounts({stuck_account: stuck.base_url,
                              healthy_account: healthy.base_url})
        prefix = isolated_prefix()
        settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_name_prefix=prefix)
        kafka = await stack_topics(kafka_bootstrap, prefix)
        stuck_commands = [_command(stuck_account, f"+4179100{n:04d}")
                          for n in range(SENDER_CONCURRENCY)]
        healthy_command = _command(healthy_account, "+41792000000")
        async with sender_worker(settings, accounts) as runtime:
            running = asyncio.create_task(runtime.run())
            try:
                await asyncio.wait_for(runtime.ready.wait(), 30)
                async with StackWatcher(kafka_bootstrap, prefix,
                                        (OUTBOUND_RESULTS.name,)) as watcher:
                    before = await watcher.snapshot()
                    await publish(kafka, [command_record(command, "infobip")
                                          for command in stuck_commands])
                    assert await until(
                        lambda: stuck.requests >= SENDS_IN_FLIGHT_PER_ORIGIN, 30)
                    await publish(kafka, [command_record(healthy_command, "infobip")])
                    # answered while the hanging provider holds its requests (30 s timeout)
                    found = await collect_until(
                        watcher, before,
                        lambda f: bool(results_for(f, healthy_command.id)), timeout_s=20)
                    [result] = results_for(found, healthy_command.id)
                    assert result["status"] == "accepted"
                    assert not any(results_for(found, c.id) for c in stuck_commands)
                    assert stuck.requests == SENDS_IN_FLIGHT_PER_ORIGIN  # the rest wait
                    stuck.release()  # the hanging requests end unanswered; then it answers
                    found = await collect_until(
                        watcher, before,
                        lambda f: all(results_for(f, c.id) for c in stuck_commands))
            finally:
                runtime.stop()
                await running
    outcomes = [(r["status"], r["error"]["code"] if r["error"] else None)
                for c in stuck_commands for r in results_for(found, c.id)]
    # cut off after the request left: maybe sent, not resent; the others sent once it answers
    assert sorted(set(outcomes)) == [("accepted", None), ("failed", "network")]
    assert outcomes.count(("failed", "network")) == SENDS_IN_FLIGHT_PER_ORIGIN
    assert len(outcomes) == SENDER_CONCURRENCY and stuck.requests == SENDER_CONCURRENCY
