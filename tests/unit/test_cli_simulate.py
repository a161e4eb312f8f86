"""`switchboard simulate` and SIGHUP, in real processes: as switchboard.stopping has it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.common import wait_http
from switchboard.localkafka import free_port, stop_process

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


def _simulate_until_ready(*, hang_up_ignored: bool, **more_env: str
                          ) -> tuple[subprocess.Popen[str], str]:
    """`simulate` in a process group of its own, as a shell gives a job (a closed terminal
    signals the whole group); SIGHUP ignored as `nohup` leaves it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    port = free_port()
    env = clean | {"SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_SIMULATOR_PORT": str(port)} | more_env

    def ignore_hang_up() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    simulator = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "simulate"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, process_group=0,
        preexec_fn=ignore_hang_up if hang_up_ignored else None)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_http(f"{base}/_sim/sends"))
    except BaseException:
        stop_process(simulator, 60)
        raise
    return simulator, base


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_closed_terminal_stops_simulate_cleanly(signum: signal.Signals) -> None:
    """SIGHUP (its terminal or ssh session closed) stops it as Ctrl-C does: it ended the
    process at once (exit 129). SIGTERM's clean stop exited 143 (uvicorn raised the signal
    again once stopped)."""
    simulator, _ = _simulate_until_ready(hang_up_ignored=False)
    try:
        os.killpg(simulator.pid, signum)
        output = simulator.communicate(timeout=60)[0]
    finally:
        stop_process(simulator, 60)
    assert simulator.returncode == 0, output
    assert "Finished server process" in output
    assert "Traceback" not in output


def test_simulate_under_nohup_runs_on_once_its_terminal_is_closed() -> None:
    """`nohup switchboard simulate &`, then logging out: it serves on."""
    simulator, base = _simulate_until_ready(hang_up_ignored=True)
    try:
        os.killpg(simulator.pid, signal.SIGHUP)
        time.sleep(1)
        assert simulator.poll() is None
        assert httpx.get(f"{base}/_sim/sends", timeout=5).status_code == 200
        simulator.send_signal(signal.SIGTERM)
        output = simulator.communicate(timeout=60)[0]
    finally:
        stop_process(simulator, 60)
    assert simulator.returncode == 0, output


def test_simulate_is_one_process_whatever_web_concurrency_says() -> None:
    """uvicorn reads WEB_CONCURRENCY (as int) for a server not told its number of processes:
    set for another app in the shell or the image (`auto`, say), simulate stopped at start
    with a traceback ("stopped by an unexpected error"). It is one process, always."""
    simulator, base = _simulate_until_ready(hang_up_ignored=False, WEB_CONCURRENCY="auto")
    try:
        assert httpx.get(f"{base}/_sim/sends").status_code == 200
        os.killpg(simulator.pid, signal.SIGTERM)
        output = simulator.communicate(timeout=60)[0]
    finally:
        stop_process(simulator, 60)
    assert simulator.returncode == 0, output
    assert "Traceback" not in output
