"""`switchboard tail` while its broker answers nothing (paused: connections open, nothing
answered, as in a network partition or a JVM's long pause): it says so on stderr once, says
so once Kafka answers again, and prints what comes after."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from switchboard import tail as tail_module
from switchboard.records import OutRecord
from tests.integration.printed import Printed
from tests.integration.processes import own_broker, paused, until
from tests.kafka_helpers import new_topic, publish

SILENT_S = 3.0
PAUSED_S = 12.0
WARNING = "warning: Kafka has answered none of tail's fetches for "
BACK = "Kafka answers again (silent for "


async def test_tail_says_a_silent_broker_once_and_its_return(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Tail printed nothing and said nothing for as long as the broker was paused: as if no
    # record came.
    monkeypatch.setattr(tail_module, "SILENT_AFTER_S", SILENT_S)
    printed = Printed(capsys)
    async with own_broker(tmp_path) as broker:
        assert broker.process is not None
        bootstrap = broker.bootstrap_servers
        topic = await new_topic(bootstrap, "tail.paused", 1)
        tailing = asyncio.create_task(tail_module.tail(bootstrap, [topic], limit=2))
        try:
            # Tail starts at the end: the record is published until it is printed.
            for n in range(60):  # bounded: 30 s
                await publish(bootstrap, [OutRecord(topic, orjson.dumps({"n": n}))])
                await asyncio.sleep(0.5)
                printed.read()
                if printed.out:
                    break
            assert printed.out, "tail printed nothing before the pause"
            with paused(broker):
                await asyncio.sleep(PAUSED_S)
                printed.read()
            assert len(printed.said(WARNING)) == 1, printed.err
            assert not printed.said(BACK), printed.err
            await until(lambda: printed.has_said(BACK), 60, "said Kafka answers again")
            await publish(bootstrap, [OutRecord(topic, orjson.dumps({"after": True}))])
            await asyncio.wait_for(asyncio.shield(tailing), 60)
            printed.read()
        finally:
            if not tailing.done():
                tailing.cancel()
        assert orjson.loads(printed.out[-1])["value"] == {"after": True}
        assert len(printed.said(WARNING)) == 1, printed.err
        assert len(printed.said(BACK)) == 1, printed.err
