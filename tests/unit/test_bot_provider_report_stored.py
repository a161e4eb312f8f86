"""A provider's opt-out report that another bot worker already stored, handled by the one
behind: not written again, as a keyword's change is not (the 'already stored' rule,
opt_out_change.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.bots.handler import keywords_answer
from consumers.bots.optouts import decode_opt_out, opt_out_key
from switchboard.topics import OPT_OUTS
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import bird_opt_out_report, handler, opt_out_changes, record

CONTACT = "+4179000111"


async def test_a_provider_opt_out_another_bot_worker_stored_is_not_written_again(
        tmp_path: Any) -> None:
    """Every bot worker handles every provider report. The one ahead stores the report's
    opt-out, then the contact's START; the one behind, its table holding that opt-out but not
    yet the START, writes the opt-out again: after the START in the partition, it stands as
    the contact's latest state (the sender refusing them) until that worker handles the START."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ahead, behind = handler(tmp_path / "a", keywords_answer), handler(tmp_path / "b",
                                                                      keywords_answer)
    report = bird_opt_out_report(datetime.now(UTC) - timedelta(seconds=5))
    first = FakeContext()
    await ahead.handle(report, first)
    await ahead.handle(record("START"), FakeContext())
    [stored] = [decode_opt_out(r.value) for r in first.published if r.topic == OPT_OUTS.name]
    behind.opt_outs.table.put_local(opt_out_key("acme", CONTACT), stored)
    ctx = FakeContext()
    await behind.handle(report, ctx)
    assert opt_out_changes(ctx) == []
