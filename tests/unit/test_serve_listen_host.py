"""`serve`'s metrics port listens where its webhook port does, and its check of a port taken
covers every address uvicorn then binds. Kafka is never reached (serve starts without it).
Only where the machine has an IPv6 loopback: the cases differ from IPv4 ones only there."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.common import wait_http
from switchboard.cli.startup import port_taken
from switchboard.localkafka import free_port, stop_process
from tests.unit.test_listen_host import needs_ipv6

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


def _env(host: str, port: int, **more: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SWITCHBOARD_", "PROMETHEUS_", "KAFKA_BOOTSTRAP_"))}
    return clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
                    "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                    "SWITCHBOARD_HTTP_HOST": host, "SWITCHBOARD_HTTP_PORT": str(port), **more}


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=10)
    except httpx.ConnectError:
        return True
    return False


@needs_ipv6
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_ipv6_any_listens_on_ipv6_only_on_every_port(workers: str,
                                                               tmp_path: Path) -> None:
    """As one process's uvicorn listens on its webhook port. prometheus-client's own server
    took `::` as dual-stack: the metrics port answered on 127.0.0.1; so did the webhook port
    of `serve --workers N`, bound by uvicorn's Config.bind_socket."""
    port, metrics_port = free_port(), free_port()
    with (tmp_path / "stderr").open("w") as stderr:
        serve = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "serve"], stdout=subprocess.DEVNULL,
            stderr=stderr, env=_env("::", port, SWITCHBOARD_METRICS_PORT=str(metrics_port),
                                    SWITCHBOARD_HTTP_WORKERS=workers))
        try:
            asyncio.run(wait_http(f"http://[::1]:{port}/healthz", timeout_s=60))
            assert httpx.get(f"http://[::1]:{metrics_port}/metrics", timeout=10).status_code == 200
            assert _refused(f"http://127.0.0.1:{port}/healthz")
            assert _refused(f"http://127.0.0.1:{metrics_port}/metrics")
        finally:
            stop_process(serve, 30)
    assert serve.returncode == 0, (tmp_path / "stderr").read_text()


@needs_ipv6
def test_a_port_taken_on_one_address_of_the_host_is_said() -> None:
    """uvicorn binds every address of a name (here the empty host, every interface: 0.0.0.0
    and ::; settings never give it, but a name of both families, localhost on many systems,
    is the same case). The check bound the first alone, so a port taken on the IPv6 one was
    uvicorn's failure at its start (exit 3, no setting named), not the check's line."""
    with socket.create_server(("::", 0), family=socket.AF_INET6) as taken:  # IPv6 only
        port = taken.getsockname()[1]
        said = port_taken("", [("ingest", "SWITCHBOARD_HTTP_PORT", port)])
    assert said is not None
    assert said.endswith(f":{port}: Address already in use (set SWITCHBOARD_HTTP_PORT to "
                         "choose another port)")
