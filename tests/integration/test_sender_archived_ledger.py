"""The sender's ledger with days-old records, on the real broker: they load as archived (the
id and its state only), and a sender started on them does not send those ids again (a replay
of the outbound topic, a group position reset), nor publish anything for them; an id handled
within the hour has its result published again, as before."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from consumers.ledger import LEDGER_ARCHIVING, LedgerEntry, decode_ledger, ledger_stands
from consumers.table import CompactedTable
from switchboard.clients import KafkaConnection
from switchboard.commands import OutboundCommand, OutboundResult, ResultStatus
from switchboard.records import command_record
from switchboard.topics import OUTBOUND_RESULTS, OUTBOUND_SENT
from tests.integration.stack import (
    command_for,
    isolated_prefix,
    results_for,
    running_stack,
    stack_topics,
)
from tests.kafka_helpers import collect_until, publish

DAY_S = 86_400


def handled(command: OutboundCommand, state: str) -> bytes:
    result = OutboundResult(command_id=command.id, account=command.account, provider="infobip",
                            to=command.to, attempts=1, completed_at=datetime.now(UTC),
                            status=ResultStatus.ACCEPTED if state == "sent"
                            else ResultStatus.FAILED)
    return LedgerEntry.model_validate({"state": state, "result": result}).model_dump_json(
        ).encode()


async def _write_ledger(kafka: KafkaConnection,
                        records: list[tuple[OutboundCommand, str, float]]) -> None:
    """Each command's ledger record, its state, written `age_s` ago (its record's time)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for command, state, age_s in records:
            await producer.send_and_wait(kafka.topic(OUTBOUND_SENT.name), handled(command, state),
                                         key=command.id.encode(),
                                         timestamp_ms=int((time.time() - age_s) * 1000))
    finally:
        await producer.stop()


async def _loaded(kafka: KafkaConnection) -> CompactedTable[LedgerEntry]:
    table = CompactedTable(kafka, OUTBOUND_SENT.name, decode_ledger, stands=ledger_stands,
                           max_age_s=8 * DAY_S, archiving=LEDGER_ARCHIVING)
    await table.start()
    await table.stop()
    return table


async def test_ids_handled_days_ago_load_archived_and_are_not_sent_again(
        kafka_bootstrap: str) -> None:
    # One conversation: its commands are handled in their order, so the fresh one's result
    # says the sender has handled those before it.
    old_sent, old_failed, recent, fresh = (command_for("infobip") for _ in range(4))
    prefix = isolated_prefix()  # the stack's, whose ledger is written first
    kafka = await stack_topics(kafka_bootstrap, prefix)
    await _write_ledger(kafka, [(old_sent, "sent", 2 * DAY_S), (old_failed, "failed", 2 * DAY_S),
                                (recent, "sent", 600)])

    table = await _loaded(kafka)
    found = {command.id: table.get(command.id.encode())
             for command in (old_sent, old_failed, recent, fresh)}
    assert [(e.state, e.result is not None) if e else None for e in found.values()] == [
        ("sent", False), ("failed", False), ("sent", True), None]
    assert old_sent.id.encode() not in table._written  # held as a fingerprint, not whole

    async with running_stack(kafka_bootstrap, kafka_name_prefix=prefix) as stack, stack.watching(
            (OUTBOUND_RESULTS.name, OUTBOUND_SENT.name)) as watcher:
        before = await watcher.snapshot()
        await publish(kafka, [command_record(command, "infobip")
                                        for command in (old_sent, old_failed, recent, fresh)])
        await collect_until(watcher, before, lambda f: bool(results_for(f, fresh.id)),
                            timeout_s=60)
        await asyncio.sleep(1)  # anything late for the old ids would show too
        records = await watcher.records_since(before)
        sends = [s["correlation_id"] for s in await stack.sends(fresh.account)]

    assert sends.count(fresh.id) == 1
    assert not {old_sent.id, old_failed.id, recent.id} & set(sends)
    assert results_for(records, old_sent.id) == results_for(records, old_failed.id) == []
    ledger_keys = [r.key for r in records.get(OUTBOUND_SENT.name, [])]
    assert old_sent.id.encode() not in ledger_keys and old_failed.id.encode() not in ledger_keys
    [republished] = results_for(records, recent.id)  # within the hour: its result, again
    assert republished["status"] == "accepted"
