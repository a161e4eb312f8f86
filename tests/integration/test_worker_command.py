"""`switchboard worker` against the real broker before ingest has created the topics (docker
compose starts them together): one error line that says what to do, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize(("worker", "topic"), [("sender", "switchboard.outbound-sent.v1"),
                                               ("keywords", "switchboard.opt-outs.v1")])
def test_a_worker_without_its_topics_says_so_in_one_line(kafka_bootstrap: str, worker: str,
                                                         topic: str) -> None:
    prefix = f"it-noworker-{uuid.uuid4().hex[:8]}."  # an install whose topics nobody created
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                        "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix,
                        "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLES / "accounts.toml"),
                        "SWITCHBOARD_RULES_FILE": str(EXAMPLES / "rules.toml"),
                        "SWITCHBOARD_PUBLIC_URL": "http://127.0.0.1:8080"}
    result = subprocess.run([sys.executable, "-m", "switchboard", "worker", worker], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == (f"error: topic {prefix}{topic} does not exist: `switchboard serve` (or "
                     "`run`) creates the topics at start-up; start it first")
