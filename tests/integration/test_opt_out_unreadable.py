"""A contact whose latest opt-out record cannot be read (cut short), on the real broker: the
list read at start-up had them as not opted out (the record logged and skipped), so they were
messaged. Now opted out until a readable newer change (their START) arrives. The session
broker's shared opt-out topic, under an account of this test's own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consumers.bots.optouts import OptOutList, decode_opt_out, opt_out_records
from consumers.table import CompactedTable
from switchboard.clients import KafkaConnection
from switchboard.records import OutRecord
from switchboard.topics import OPT_OUTS
from tests.integration.bots import ACCOUNT, RULES, new_contact, texts, wait_replies
from tests.integration.stack import isolated_prefix, running_stack, stack_topics
from tests.kafka_helpers import publish

CUT_SHORT = "+41790000001"  # opted in, then a STOP cut short
STOPPED = "+41790000002"  # a readable STOP: the control


def change(account: str, contact: str, opted_out: bool, at: datetime) -> OutRecord:
    record, _ = opt_out_records("infobip", account, contact, opted_out, "test", at)
    return record


async def read_list(kafka: KafkaConnection, account: str) -> dict[str, bool]:
    table = CompactedTable(kafka, OPT_OUTS.name, decode_opt_out)
    await table.start()
    try:
        opt_outs = OptOutList(table)
        return {contact: opt_outs.is_opted_out(account, contact)
                for contact in (CUT_SHORT, STOPPED)}
    finally:
        await table.stop()


async def test_a_cut_short_opt_out_reads_as_opted_out_until_a_start(kafka_bootstrap: str
                                                                     ) -> None:
    kafka = KafkaConnection(kafka_bootstrap)
    account = f"it-optsafe-{uuid.uuid4().hex[:8]}"
    earlier = datetime.now(UTC) - timedelta(minutes=10)
    stop = change(account, CUT_SHORT, True, earlier + timedelta(minutes=1))
    await publish(kafka, [change(account, CUT_SHORT, False, earlier),
                          OutRecord(OPT_OUTS.name, stop.value[:50], stop.key),
                          change(account, STOPPED, True, earlier)])
    assert await read_list(kafka, account) == {CUT_SHORT: True, STOPPED: True}

    table = CompactedTable(kafka, OPT_OUTS.name, decode_opt_out)
    await table.start()
    try:
        opt_outs = OptOutList(table)
        assert opt_outs.is_opted_out(account, CUT_SHORT)
        # The contact's START, received now (after the cut-short record was written), read by
        # the follower: in again. An older change does not undo the unreadable record.
        await publish(kafka, [change(account, CUT_SHORT, False, datetime.now(UTC))])
        await table.catch_up()
        assert not opt_outs.is_opted_out(account, CUT_SHORT)
        state = opt_outs.state(account, CUT_SHORT)
        assert state is not None and state.source == "test"
    finally:
        await table.stop()
    assert await read_list(kafka, account) == {CUT_SHORT: False, STOPPED: True}  # restarted



async def test_a_bot_started_after_a_cut_short_stop_answers_help_only_until_start(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """Through the running stack, whose sender and keyword bot read the list at start: the
    contact's text is not answered (nor would a reply be sent), HELP still is, and their START
    opts them back in, confirmed ("welcome back")."""
    contact = new_contact()
    stop = change(ACCOUNT, contact, True, datetime.now(UTC) - timedelta(minutes=1))
    prefix = isolated_prefix()  # the stack's, whose opt-out list it is written to first
    await publish(await stack_topics(kafka_bootstrap, prefix), [
        change(ACCOUNT, contact, False, datetime.now(UTC) - timedelta(minutes=2)),
        OutRecord(OPT_OUTS.name, stop.value[:50], stop.key)])
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules, kafka_name_prefix=prefix) as stack:
        await texts(stack, contact, "price")
        await texts(stack, contact, "help")  # after "price" in the contact's partition
        assert await wait_replies(stack, contact, 1) == [
            "E2E help: reply PRICE or ORDER <n>. STOP to opt out."]
        await texts(stack, contact, "START")
        await texts(stack, contact, "price")
        assert (await wait_replies(stack, contact, 3))[1:] == [
            "E2E: welcome back.", f"E2E price list for {contact}"]
