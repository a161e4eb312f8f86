"""A worker whose start Kafka ends with an error (here the broker refusing its consumer's
session timeout, outside its group.min/max.session.timeout.ms) says it in one line, exit 1, as a
missing ACL is said: it was a traceback at level critical."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from tests.integration.processes import REPO, worker_environment

# A session timeout under any broker's group.min.session.timeout.ms (the test broker's 1 s,
# Kafka's default 6 s): the worker asks it of the real coordinator, which refuses it.
START_WITH_A_REFUSED_SESSION_TIMEOUT = """
import sys
import consumers.runtime
consumers.runtime.SESSION_TIMEOUT_MS = 500
from switchboard.cli import main
sys.exit(main(["worker", "sender"]))
"""


def test_a_session_timeout_kafka_refuses_ends_the_start_in_one_error_line(
        kafka_bootstrap: str) -> None:
    prefix = f"it-sessiontimeout-{uuid.uuid4().hex[:8]}."  # its own group and topics
    env = worker_environment(kafka_bootstrap, prefix) | {
        "PYTHONPATH": os.pathsep.join(sys.path), "SWITCHBOARD_LOG_FORMAT": "json"}
    result = subprocess.run([sys.executable, "-c", START_WITH_A_REFUSED_SESSION_TIMEOUT],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert '"critical"' not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == ("error: Kafka refused worker sender: [Error 26] InvalidSessionTimeoutError "
                     "(its consumer's session timeout, 0.5 s, is outside the broker's "
                     "group.min.session.timeout.ms to group.max.session.timeout.ms)")
