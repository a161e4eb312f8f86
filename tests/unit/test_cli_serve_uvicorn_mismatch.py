"""A uvicorn that ingest's HTTP protocol was not written for (tests/unit/test_ingest_uvicorn_api
.py pins what it takes of uvicorn), as `serve` and `run` meet it: one error line before anything
starts. `serve --workers N` met it in each worker process, which uvicorn's supervisor started
again every half second, without end, each with its traceback.

The mismatch is simulated as that test does, in every process of the command (the workers
are spawned: a fresh interpreter each), by a sitecustomize module on PYTHONPATH."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import uvicorn

from switchboard.localkafka import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ACCOUNTS = ROOT / "examples" / "accounts.toml"
MISMATCH = (
    "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n"
    "def on_headers_complete(self):  # a release starting its tasks under another name\n"
    "    self._start_task()\n"
    "HttpToolsProtocol.on_headers_complete = on_headers_complete\n"
)
# A uvicorn older than ingest works with, every name still there (pip under --no-deps).
OLD_RELEASE = (
    "import importlib.metadata\n"
    "real = importlib.metadata.version\n"
    "importlib.metadata.version = lambda name: '0.52.4' if name == 'uvicorn' else real(name)\n"
)
# Far more than the check takes; the restart loop it replaces never ended by itself.
WITHIN_S = 60


def _switchboard(tmp_path: Path, *args: str, site_code: str = MISMATCH) -> tuple[int | None, str]:
    """The command's exit code (None if it was still running after WITHIN_S) and stderr."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(site_code)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SWITCHBOARD_", "PROMETHEUS_")) and k != "PYTHONPATH"}
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_HTTP_PORT": str(free_port()),
                   "SWITCHBOARD_SIMULATOR_PORT": str(free_port()),
                   "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
                   "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    process = subprocess.Popen([sys.executable, "-m", "switchboard", *args], env=env,
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        _, err = process.communicate(timeout=WITHIN_S)
        return process.returncode, err
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the supervisor and its workers
        _, err = process.communicate()
        return None, err


@pytest.mark.parametrize(("args", "code"), [
    (["serve", "--workers", "2"], 3),
    (["serve"], 3),  # logged a critical traceback, exit 1
    (["run"], 2),  # as its other refusals before the broker
], ids=["serve-workers", "serve", "run"])
def test_a_uvicorn_ingest_was_not_written_for_is_one_error_line_before_anything_starts(
        tmp_path: Path, args: list[str], code: int) -> None:
    returncode, err = _switchboard(tmp_path, *args)
    assert returncode == code, err[-2000:]
    assert err.startswith(f"error: uvicorn {uvicorn.__version__} is not a version "), err[-2000:]
    assert "HttpToolsProtocol.on_headers_complete uses no _start_asgi_task" in err
    assert len(err.splitlines()) == 1, err[-2000:]
    assert not (tmp_path / "data").exists()  # `run` started no broker


def test_a_uvicorn_older_than_ingest_works_with_is_refused_naming_both_versions(
        tmp_path: Path) -> None:
    returncode, err = _switchboard(tmp_path, "serve", site_code=OLD_RELEASE)
    assert returncode == 3, err[-2000:]
    assert err.startswith("error: uvicorn "), err[-2000:]
    assert "version 0.52.4 is installed, 0.53 or later is needed" in err
    assert len(err.splitlines()) == 1, err[-2000:]
