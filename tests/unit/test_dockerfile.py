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


def test_the_dependencies_are_installed_before_the_sources_are_copied() -> None:
    """Docker rebuilds every layer after the first one whose inputs changed: with the sources
    copied before the one `pip install`, any change to the code downloaded and installed every
    dependency again. Installed from pyproject.toml alone first, the code then goes in on its
    own (`--no-deps`, the dependencies being there already)."""
    first_source_copy = next(number for number, line in enumerate(LINES)
                             if line.startswith("COPY switchboard "))
    before = [line for line in LINES[:first_source_copy] if line.startswith("RUN pip install")]
    assert before, "no dependency install before the sources are copied"
    assert "--constraint constraints.txt" in before[0], "the dependencies go in unpinned"
    after = [line for line in LINES[first_source_copy:] if line.startswith("RUN pip install")]
    assert after and "--no-deps" in after[0], "the code's install resolves the dependencies again"
