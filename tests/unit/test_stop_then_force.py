"""A worker's stop signals: the first asks for a clean stop, a second ends the process at once
(a clean stop can wait on a handler or on Kafka, and only SIGKILL ended it)."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from switchboard.stopping import StopThenForce


def test_the_first_signal_stops_cleanly_and_a_second_ends_the_process(
        caplog: pytest.LogCaptureFixture) -> None:
    stops: list[bool] = []
    ended: list[int] = []
    handler = StopThenForce(lambda: stops.append(True), worker="sender", end=ended.append)
    handler(signal.SIGTERM)
    assert (stops, ended) == ([True], [])
    handler(signal.SIGINT)
    assert (stops, ended) == ([True], [128 + signal.SIGINT])  # 130, as a shell reports Ctrl-C
    lines: list[dict[str, Any]] = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    [line] = [line for line in lines if line["event"].startswith("second stop signal")]
    assert (line["worker"], line["signal"]) == ("sender", "SIGINT")
