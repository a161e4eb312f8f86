"""A worker's log while Kafka answers nothing: one line as /readyz turns unready for it, one
as Kafka answers again; none per check in between (it is looked at every KAFKA_CHECK_S)."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.fake_consumers import Group
from tests.unit.test_runtime_readiness import (
    SILENT_S,
    TP,
    _problems_for,
    _ready_again,
    _worker,
    group,  # noqa: F401 - the fixture
)


def _said(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, object]]:
    return [r.msg for r in caplog.records
            if isinstance(r.msg, dict) and r.msg.get("event") == event]


async def test_kafka_silent_is_said_once_and_its_return_once(
        group: Group, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    # Only /readyz said it: a worker with nothing in flight logged nothing of its own while
    # its broker answered nothing (aiokafka's metadata errors only, every 15 s).
    caplog.set_level("INFO")
    async with _worker(group) as runtime:
        await group.assign({TP})
        assert await _problems_for(runtime, 3 * SILENT_S, group) == {None}
        assert not _said(caplog, "kafka is not answering the worker")
        await asyncio.sleep(4 * SILENT_S)  # Kafka away: no fetch is answered, many checks
        silent = _said(caplog, "kafka is not answering the worker")
        assert len(silent) == 1, silent
        assert silent[0]["worker"] == "test"
        assert str(silent[0]["reason"]).startswith("Kafka unreachable: no fetch answered for ")
        assert not _said(caplog, "kafka answers the worker again")
        await _ready_again(runtime, group)  # Kafka back
        assert await _problems_for(runtime, 2 * SILENT_S, group) == {None}
        back = _said(caplog, "kafka answers the worker again")
        assert len(back) == 1, back
        assert isinstance(back[0]["unready_s"], float) and back[0]["unready_s"] > 0
        assert len(_said(caplog, "kafka is not answering the worker")) == 1
