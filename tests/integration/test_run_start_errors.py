"""`switchboard run` stopped at start-up by what stops `worker` too: said in the same one
`error:` line and exit code, not a `critical` log line with a masked traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid

from switchboard.localkafka import free_port
from switchboard.topics import OPT_OUTS, TopicSpec, ensure_topics
from tests.integration.processes import switchboard
from tests.kafka_helpers import produce_unreadable_to_partition_1

PASSWORD = "egress-proxy-pass"


def _run(kafka_bootstrap: str, **env: str) -> tuple[int, str]:
    """Its exit code and output, on the session's cluster (no broker of its own) under a
    prefix of its own, with the demo accounts and rules."""
    clean = {name: value for name, value in os.environ.items()
             if not name.startswith("SWITCHBOARD_")
             and name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    process = switchboard(clean | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SWITCHBOARD_KAFKA_NAME_PREFIX": f"it-run-{uuid.uuid4().hex[:8]}.",
        "SWITCHBOARD_TOPIC_PARTITIONS": "1",
        "SWITCHBOARD_HTTP_PORT": str(free_port()),
        "SWITCHBOARD_SIMULATOR_PORT": str(free_port()),
        "SWITCHBOARD_LOG_FORMAT": "json"} | env, "run")
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"run did not stop:\n{output}") from None
    return process.returncode, output


def _error_line(output: str) -> str:
    assert "Traceback" not in output and '"critical"' not in output, output
    [line] = [line for line in output.splitlines() if line.startswith("error:")]
    return line


def test_run_with_a_proxy_variable_the_sender_cannot_use_says_so_in_one_line(
        kafka_bootstrap: str) -> None:
    # It logged "stopped by an unexpected error" at level critical, exit 1, where
    # `worker sender` says "error: HTTPS_PROXY ..." and exits 2.
    code, output = _run(kafka_bootstrap,
                        HTTPS_PROXY=f"ftp://sender:{PASSWORD}@proxy.invalid:21")
    assert code == 2, output
    line = _error_line(output)
    assert line.startswith("error: HTTPS_PROXY (or https_proxy) of the environment names a "
                           "proxy httpx cannot use"), line
    assert PASSWORD not in output
    assert "Ctrl-C stops everything." not in output  # nobody told where to send requests
    assert f"Kafka {kafka_bootstrap} ready" not in output  # said before Kafka is asked


def test_run_not_to_create_topics_says_which_is_missing_in_one_line(kafka_bootstrap: str
                                                                    ) -> None:
    # As `worker` says it; run ended in a critical log line, exit 1.
    code, output = _run(kafka_bootstrap, SWITCHBOARD_CREATE_TOPICS="false")
    assert code == 1, output
    line = _error_line(output)
    assert line.startswith("error: topic it-run-") and "does not exist" in line, line


async def test_run_whose_opt_out_list_cannot_be_read_says_so_in_one_line(
        kafka_bootstrap: str) -> None:
    prefix = f"it-run-unreadable-{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka_bootstrap, partitions=2, replication_factor=1,
                        specs=(TopicSpec(prefix + OPT_OUTS.name, "test", OPT_OUTS.config),))
    await produce_unreadable_to_partition_1(kafka_bootstrap, prefix + OPT_OUTS.name)
    code, output = await asyncio.to_thread(
        _run, kafka_bootstrap, SWITCHBOARD_KAFKA_NAME_PREFIX=prefix,
        SWITCHBOARD_TOPIC_PARTITIONS="2")
    assert code == 1, output
    line = _error_line(output)
    assert line.startswith("error: a worker stopped: aiokafka cannot read the record at "
                           f"{prefix}{OPT_OUTS.name} partition 1 offset 2 ("), line
