"""`switchboard worker` processes and SIGHUP, which a worker started from a terminal gets
when that terminal is closed: the sender stops cleanly, as on SIGTERM (and as `run` does);
the keyword bot reloads its rules and runs on."""

from __future__ import annotations

import signal
import uuid

from tests.integration.processes import (
    killed_if_left,
    switchboard,
    wait_for_line,
    worker_environment,
)


def _environment(kafka_bootstrap: str) -> dict[str, str]:
    return worker_environment(kafka_bootstrap, f"it-hup-{uuid.uuid4().hex[:8]}.") | {
        "SWITCHBOARD_LOG_FORMAT": "json"}


def test_sighup_stops_the_sender_cleanly(kafka_bootstrap: str) -> None:
    # It ended at once, as if killed (exit -1): nothing committed since its last commit, a
    # send cut short reported outcome_unknown.
    with killed_if_left(switchboard(_environment(kafka_bootstrap), "worker", "sender")) as process:
        wait_for_line(process, "worker started")
        process.send_signal(signal.SIGHUP)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert '"event": "worker stopped"' in output


def test_sighup_reloads_the_keyword_bots_rules_and_it_runs_on(kafka_bootstrap: str) -> None:
    keywords = switchboard(_environment(kafka_bootstrap), "worker", "keywords")
    with killed_if_left(keywords) as process:
        wait_for_line(process, "worker started")
        process.send_signal(signal.SIGHUP)
        wait_for_line(process, "rules reloaded", timeout_s=30)
        assert process.poll() is None  # still running
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert '"event": "worker stopped"' in output
