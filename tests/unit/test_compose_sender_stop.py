"""The sender's stop time in docker-compose.yml against what bounds it in the code: the
provider calls in flight get SendPolicy.stop_grace_s, whatever the account's timeout_s
(test_compose counts the default timeout_s, 10 s, where the stop allows 15)."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

from consumers.commits import COMMIT_TIMEOUT_S
from consumers.send_attempts import SendPolicy
from switchboard.producer import DurableProducer

ROOT = Path(__file__).resolve().parents[2]


def _seconds(duration: str) -> int:
    minutes, _, seconds = duration.rpartition("m")
    return int(minutes or 0) * 60 + int(seconds.removesuffix("s") or 0)


def test_the_senders_stop_grace_covers_its_calls_in_flight_then_kafka() -> None:
    sender = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["sender"]
    # The workers' producer: built without a timeout of its own (consumers.runtime).
    produce = inspect.signature(DurableProducer).parameters["timeout_s"].default
    needed = (SendPolicy().stop_grace_s  # a call in flight at the signal
              + produce                  # its result and ledger mark
              + COMMIT_TIMEOUT_S         # the commit
              + 4 * produce)             # the producer's stop: its flusher, then its client
    assert _seconds(sender["stop_grace_period"]) >= needed, needed
