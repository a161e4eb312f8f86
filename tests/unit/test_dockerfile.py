"""The Dockerfile cannot be built here (no Docker engine): what it must keep, read from it."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINES = (ROOT / "Dockerfile").read_text().splitlines()


def _instruction(name: str) -> str:
    """The argument of the last `name` instruction (the one in force)."""
    found = [line.removeprefix(f"{name} ") for line in LINES if line.startswith(f"{name} ")]
    assert found, f"no {name} in the Dockerfile"
    return found[-1]


def test_switchboard_is_not_pid_1_but_under_an_init_that_passes_signals_on() -> None:
    """PID 1 gets only the signals it has a handler for: a worker's SIGTERM before it had
    installed its own (reaching Kafka, reading the opt-out list) was dropped, and it ran on
    until Docker or Kubernetes killed it; `tail` and `send` ignored `docker stop`."""
    entrypoint = json.loads(_instruction("ENTRYPOINT"))  # exec form: no shell in between
    assert entrypoint == ["/usr/bin/tini", "--", "switchboard"]
    installs = " ".join(line for line in LINES if "apt-get install" in line)
    assert " tini" in installs, "the image runs tini without installing it"
