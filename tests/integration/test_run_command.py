"""`switchboard run`, as the README has a new user start it, try it, and stop it with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from switchboard.localkafka import free_port
from tests.integration.processes import (
    REPO,
    broker_pid,
    broker_running,
    switchboard,
    wait_for_line,
)


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    process = switchboard(env, "run", new_session=True)  # Ctrl-C signals the whole group
    return process, wait_for_line(process, "Ctrl-C stops everything.")


def _ctrl_c(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """The exit code, the output, and when Ctrl-C was pressed (as the log's timestamps)."""
    pressed = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    os.killpg(process.pid, signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its JVM follows: a failed test leaves none
        raise
    return process.returncode, output, pressed


def _logged_since(lines: list[str], since: str) -> list[dict[str, Any]]:
    logged = [orjson.loads(line) for line in lines if line.startswith("{")]
    return [entry for entry in logged if entry.get("timestamp", "") >= since]


def _run_environment(data_dir: Path, http_port: int, simulator_port: int) -> dict[str, str]:
    # The demo accounts (no SWITCHBOARD_ACCOUNTS_FILE) follow the simulator to its port.
    return {k: v for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "SWITCHBOARD_ACCOUNTS_FILE")} | {
        "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_KAFKA_PORT": str(free_port()),
        "SWITCHBOARD_KAFKA_CONTROLLER_PORT": str(free_port()),
        "SWITCHBOARD_HTTP_PORT": str(http_port), "SWITCHBOARD_SIMULATOR_PORT": str(simulator_port),
        "SWITCHBOARD_LOG_FORMAT": "json"}


async def test_run_serves_the_readme_example_and_ctrl_c_stops_it_quietly(tmp_path: Path) -> None:
    http_port, simulator_port = free_port(), free_port()
    env = _run_environment(tmp_path, http_port, simulator_port)
    process, started = await asyncio.to_thread(_start, env)
    try:
        report = (REPO / "examples/webhooks/infobip-delivery.json").read_bytes()
        async with httpx.AsyncClient(timeout=30) as client:  # right after the banner
            answer = await client.post(
                f"http://127.0.0.1:{http_port}/webhooks/infobip/demo-infobip", content=report,
                auth=("infobip", "demo-infobip-password"),
                headers={"content-type": "application/json"})
            assert answer.status_code == 200, answer.text
            sim = f"http://127.0.0.1:{simulator_port}/_sim"
            texted = await client.post(f"{sim}/inbound", json={
                "account": "demo-infobip", "from": "+41790000001", "text": "HELP"})
            assert texted.status_code < 300, texted.text
            for _ in range(150):  # bounded: up to ~30 s for the bot's answer to be sent
                sends = (await client.get(f"{sim}/sends",
                                          params={"account": "demo-infobip"})).json()["sends"]
                if sends:
                    break
                await asyncio.sleep(0.2)
            assert "reply PRICE" in str(sends), sends  # examples/rules.toml's help_text
    finally:
        code, output, pressed = await asyncio.to_thread(_ctrl_c, process)
    assert code == 0, output
    stopping = _logged_since(started + output.splitlines(), pressed)
    assert any(entry["event"] == "worker stopped" for entry in stopping)
    # The broker outlives the services still flushing and committing to it.
    assert [e for e in stopping if e["level"] in ("warning", "error")] == [], output
    assert "ingest stopped" in output
    assert not await asyncio.to_thread(broker_running, tmp_path)


def _exit(process: subprocess.Popen[str], timeout_s: float) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate(timeout=30)
        raise AssertionError(f"run did not stop in {timeout_s}s without its broker:\n{output}"
                             ) from None
    return process.returncode, output


async def test_run_stops_and_says_so_when_its_broker_dies(tmp_path: Path) -> None:
    # Before: run went on without its broker, answering every webhook 503, until Ctrl-C.
    env = _run_environment(tmp_path, free_port(), free_port())
    process, _ = await asyncio.to_thread(_start, env)
    pid = await asyncio.to_thread(broker_pid, tmp_path)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    code, output = await asyncio.to_thread(_exit, process, 120)
    assert code == 1, output
    assert "error: Kafka exited unexpectedly" in output
    assert "Traceback" not in output  # what the dying broker made fail is not the news
