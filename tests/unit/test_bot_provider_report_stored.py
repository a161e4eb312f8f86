"""Opt-out changes that meet one of the same time: a provider's report another bot worker
already stored is not written again by the one behind, as a keyword's change is not (the
'already stored' rule, opt_out_change.py); a START after a STOP of the same time stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

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


def at_time(record_: Any, received_at: datetime) -> Any:
    event = orjson.loads(record_.value)
    event["received_at"] = received_at.isoformat()
    return type(record_)(record_.topic, record_.partition, record_.offset, record_.key,
                         orjson.dumps(event))


async def test_a_start_after_a_stop_of_the_same_time_leaves_the_contact_in(tmp_path: Any
                                                                          ) -> None:
    """A STOP then START in one request (its events share the time it was received): the
    START, confirmed "Welcome back", must stand wherever the newest `at` wins, also against
    the STOP in another partition of the list, where the opt-out wins a tie."""
    bot = handler(tmp_path, keywords_answer)
    received = datetime.now(UTC)
    stop, start = FakeContext(), FakeContext()
    await bot.handle(at_time(record("STOP"), received), stop)
    await bot.handle(at_time(record("START"), received), start)
    [stopped] = [decode_opt_out(r.value) for r in stop.published if r.topic == OPT_OUTS.name]
    [started] = [decode_opt_out(r.value) for r in start.published if r.topic == OPT_OUTS.name]
    assert started.supersedes(stopped)
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)
    reader = handler(tmp_path, keywords_answer).opt_outs  # a sender whose table read the STOP
    reader.table.put_local(opt_out_key("acme", CONTACT), stopped)
    reader.remember(next(r.value for r in start.published if r.topic == OPT_OUTS.name))
    assert not reader.is_opted_out("acme", CONTACT)
