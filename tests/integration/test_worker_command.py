"""`switchboard worker` against the real broker before anything created the topics (docker
compose and Kubernetes start the processes together): the worker creates them, as ingest
does; with SWITCHBOARD_CREATE_TOPICS=false it says so in one line, not a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.processes import switchboard, wait_for_line, worker_environment


@pytest.mark.parametrize(("worker", "topic"), [("sender", "switchboard.outbound-sent.v1"),
                                               ("keywords", "switchboard.opt-outs.v1")])
def test_a_worker_not_to_create_topics_says_which_is_missing_in_one_line(
        kafka_bootstrap: str, worker: str, topic: str) -> None:
    prefix = f"it-noworker-{uuid.uuid4().hex[:8]}."  # an install whose topics nobody created
    env = worker_environment(kafka_bootstrap, prefix) | {"SWITCHBOARD_CREATE_TOPICS": "false"}
    result = subprocess.run([sys.executable, "-m", "switchboard", "worker", worker], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: topic {prefix}{topic} does not exist: ")
    assert "SWITCHBOARD_CREATE_TOPICS" in error


async def test_a_worker_started_first_creates_the_topics_and_runs(kafka_bootstrap: str) -> None:
    # Before: it stopped for want of the opt-out topic, until ingest had been started once.
    prefix = f"it-firstworker-{uuid.uuid4().hex[:8]}."
    process = switchboard(worker_environment(kafka_bootstrap, prefix), "worker", "keywords")
    try:
        wait_for_line(process, "worker started")
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            topics = set(await admin.list_topics())
        finally:
            await admin.close()
        assert {f"{prefix}switchboard.opt-outs.v1", f"{prefix}switchboard.outbound.v1",
                f"{prefix}switchboard.message.inbound.v1"} <= topics
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
