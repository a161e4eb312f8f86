"""The sender's retry lines, throttled to one a minute per account and error code, are summed up
when the worker stops: the retries counted since the last line are not lost with it."""

from __future__ import annotations

import orjson
import pytest

from switchboard.logs import configure_logging
from switchboard.records import command_record
from switchboard.topics import OUTBOUND_RESULTS
from tests.integration.stack import command_for, results_for, running_stack
from tests.kafka_helpers import collect_until, publish


async def test_retries_held_back_are_summed_up_when_the_sender_stops(
        kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    command = command_for("infobip")
    async with running_stack(kafka_bootstrap) as stack:
        response = await stack.control("POST", "faults", {"account": command.account,
                                                          "mode": "http_503", "count": 3})
        assert response.status_code < 300, response.text
        async with stack.watching((OUTBOUND_RESULTS.name,)) as watcher:
            before = await watcher.snapshot()
            await publish(stack.kafka(), [command_record(command, "infobip")])
            found = await collect_until(watcher, before,
                                        lambda f: bool(results_for(f, command.id)))
        [result] = results_for(found, command.id)
        assert result["status"] == "accepted" and result["attempts"] == 4
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    retries = [line for line in lines if line["event"].startswith("send failed, retrying")]
    # The first in full; the two after it within the minute, in the line the stop wrote.
    assert [line.get("more") for line in retries] == [None, 2]
    assert retries[0]["command"] == command.id and retries[1]["account"] == command.account
