"""The opt-out list of a topic that gained partitions (kafka-topics.sh --alter --partitions), on
the real broker: a contact's change written before is in one partition, the one written after
in another, and compaction keeps both. A worker starting then read whichever partition came
last as the contact's state: a contact back in read as opted out, or a STOP lost behind an
older START. Now the newest `at` wins, whichever partition holds it (every read order:
tests/unit/test_table_across_partitions.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from consumers.bots.optouts import OptOutList, decode_opt_out, opt_out_key, opt_out_records
from consumers.table import CompactedTable
from switchboard.clients import KafkaConnection, topic_name
from switchboard.topics import OPT_OUTS, ensure_topics
from tests.kafka_helpers import add_partitions, produce_to_partition

BACK_IN = "+41790000001"  # opted out, then back in after the partitions were added
STILL_OUT = "+41790000002"  # opted out; an older opt-in (an import) written after the change


def change(contact: str, opted_out: bool, at: datetime) -> tuple[bytes, bytes]:
    record, _ = opt_out_records("infobip", "acme", contact, opted_out, "test", at)
    return opt_out_key("acme", contact), record.value


async def test_a_fresh_opt_out_list_takes_the_newest_change_of_a_contact_in_two_partitions(
        kafka_bootstrap: str) -> None:
    kafka = KafkaConnection(kafka_bootstrap, name_prefix=f"it-moved-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(kafka, partitions=2, replication_factor=1, specs=(OPT_OUTS,))
    topic = topic_name(kafka, OPT_OUTS.name)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    later = earlier + timedelta(minutes=5)
    await produce_to_partition(kafka_bootstrap, topic, 0, change(BACK_IN, True, earlier),
                               change(STILL_OUT, True, later))
    await add_partitions(kafka_bootstrap, topic, 4)
    # The newest change of one contact is in the new partition, of the other in the old one:
    # whichever the table reads first, one of them is read before the change it replaces.
    await produce_to_partition(kafka_bootstrap, topic, 3, change(BACK_IN, False, later),
                               change(STILL_OUT, False, earlier))

    for _ in range(2):  # a restart reads the same
        table = CompactedTable(kafka, OPT_OUTS.name, decode_opt_out)
        await table.start()
        try:
            opt_outs = OptOutList(table)
            assert not opt_outs.is_opted_out("acme", BACK_IN)
            assert opt_outs.is_opted_out("acme", STILL_OUT)
            assert len(table) == 2
        finally:
            await table.stop()
