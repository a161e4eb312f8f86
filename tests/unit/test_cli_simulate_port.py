"""`switchboard simulate` moved off its default port says which accounts still send there."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from bench.common import wait_http
from switchboard.localkafka import free_port, stop_process

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


def _simulate_output(accounts_file: Path, port: int) -> str:
    """What `simulate` printed from its start to a clean stop."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env = clean | {"SWITCHBOARD_ACCOUNTS_FILE": str(accounts_file),
                   "SWITCHBOARD_SIMULATOR_PORT": str(port)}
    simulator = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "simulate"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{port}/_sim/sends"))
        simulator.send_signal(signal.SIGTERM)
        output = simulator.communicate(timeout=60)[0]
    finally:
        stop_process(simulator, 60)
    assert simulator.returncode == 0, output
    return output


def test_simulate_on_another_port_warns_that_the_demo_accounts_send_to_the_default() -> None:
    """A sender given examples/accounts.toml sends to 127.0.0.1:8090 whatever port
    `simulate` took (only `run` moves the demo accounts): its sends failed with a connection
    refused, or reached whatever else listened there, and `simulate` said nothing."""
    port = free_port()
    output = _simulate_output(EXAMPLE_ACCOUNTS, port)
    assert f"warning: the simulator is on port {port}, but demo-infobip" in output
    assert "send to port 8090 (their outbound.base_url)" in output


def test_simulate_with_accounts_naming_its_port_does_not_warn(tmp_path: Path) -> None:
    port = free_port()
    moved = tmp_path / "accounts.toml"
    moved.write_text(EXAMPLE_ACCOUNTS.read_text(encoding="utf-8").replace(
        "http://127.0.0.1:8090/", f"http://127.0.0.1:{port}/"), encoding="utf-8")
    assert "warning" not in _simulate_output(moved, port)
