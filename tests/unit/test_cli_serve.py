"""`switchboard serve` refusals that need no broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.common import wait_http
from switchboard.cli import main
from switchboard.cli.serve import StoppingServer
from switchboard.cli.startup import port_taken
from switchboard.localkafka import free_port, stop_process
from switchboard.serving import MULTIPROCESS_DIR_ENV
from switchboard.settings import get_settings
from tests.unit.fakes import run_cli

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


@pytest.mark.parametrize("workers", ["2", "1"])
def test_a_metrics_directory_that_does_not_exist_is_one_error_line(
        workers: str, tmp_path: Path) -> None:
    """Several processes share their metrics through it; a missing one was a traceback, from
    prometheus-client's import of ingest.metrics (in a process of its own, as a user runs it:
    in the suite's process that module may be imported already)."""
    missing = tmp_path / "nowhere"
    result = run_cli({MULTIPROCESS_DIR_ENV: str(missing),
                      "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                      "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS)},
                     "serve", "--workers", workers)
    assert result.returncode == 2, result.stderr
    assert f"{MULTIPROCESS_DIR_ENV}={missing}: no such directory" in result.stderr
    assert "Traceback" not in result.stderr and not missing.exists()


@pytest.mark.parametrize(("args", "setting"), [
    (["serve"], "SWITCHBOARD_HTTP_PORT"),
    (["serve", "--workers", "2"], "SWITCHBOARD_HTTP_PORT"),  # bound by uvicorn's supervisor
    (["serve", "--port", "{port}"], "--port"),
    (["simulate"], "SWITCHBOARD_SIMULATOR_PORT"),
    (["simulate", "--port", "{port}"], "--port"),
])
def test_a_port_in_use_is_one_error_line_naming_the_setting(args: list[str],
                                                            setting: str) -> None:
    """As `run` says it: uvicorn's own bind message and exit 3 named no setting."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    with socket.create_server(("127.0.0.1", 0)) as listener:  # another program's server
        port = str(listener.getsockname()[1])
        env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
                       "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                       "SWITCHBOARD_HTTP_PORT": port, "SWITCHBOARD_SIMULATOR_PORT": port}
        result = subprocess.run(
            [sys.executable, "-m", "switchboard.cli", *(a.format(port=port) for a in args)],
            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: "), result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert setting in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_free_port_is_left_free_for_uvicorn_to_bind() -> None:
    """`serve --workers` binds in uvicorn's supervisor after the check: nothing may hold it."""
    port = free_port()
    assert port_taken("127.0.0.1", [("ingest", "SWITCHBOARD_HTTP_PORT", port)]) is None
    with socket.create_server(("127.0.0.1", port)):
        pass


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_port_serves_metrics_off_the_webhook_port(workers: int) -> None:
    """Providers reach the webhook port from the internet; with SWITCHBOARD_METRICS_PORT the
    account names and counts are on that port only, summed over the worker processes."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != MULTIPROCESS_DIR_ENV}
    http_port, metrics_port = free_port(), free_port()
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: not needed
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_HTTP_PORT": str(http_port),
                   "SWITCHBOARD_METRICS_PORT": str(metrics_port),
                   "SWITCHBOARD_LOG_LEVEL": "ERROR"}
    server = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "serve", "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{http_port}"
    try:
        asyncio.run(wait_http(f"{base}/healthz"))
        with httpx.Client(timeout=5) as client:
            for _ in range(3):  # a 404 is counted by whichever worker takes it
                assert client.post(f"{base}/webhooks/infobip/nobody").status_code == 404
            assert client.get(f"{base}/metrics").status_code == 404
            scraped = client.get(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        stop_process(server, 60)
    assert scraped.status_code == 200
    assert ('switchboard_ingest_requests_total{account="unknown",outcome="unknown_account",'
            'provider="infobip"} 3.0') in scraped.text



@pytest.mark.parametrize("given", [("--ingest-url", "https://hook:pr0xy-pass@ingest.example/"),
                                   ()])
def test_simulate_does_not_print_the_ingest_url_s_password(
        given: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A public URL behind a proxy may carry Basic credentials: the start line masks them,
    whether the URL came from --ingest-url or SWITCHBOARD_PUBLIC_URL."""
    monkeypatch.setenv("SWITCHBOARD_PUBLIC_URL", "https://hook:pr0xy-pass@ingest.example/")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    monkeypatch.setattr(StoppingServer, "run",
                        lambda server, sockets=None: setattr(server, "started", True))
    get_settings.cache_clear()  # read from this environment, and not kept for other tests
    try:
        assert main(["simulate", "--port", str(free_port()), *given]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "calling ingest at https://hook:***@ingest.example/" in out
    assert "pr0xy-pass" not in out


def _serve_until_ready(workers: int, *, hang_up_ignored: bool,
                       accounts: Path = EXAMPLE_ACCOUNTS,
                       terminal: int | None = None) -> tuple[subprocess.Popen[str], str]:
    """`serve` against a Kafka that is not there (it serves all the same), in a process group
    of its own, as a shell gives a job (a closed terminal signals the whole group); SIGHUP
    ignored as `nohup` leaves it; its output on `terminal` (a pty) if given, else a pipe."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != MULTIPROCESS_DIR_ENV}
    port = free_port()
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: not needed
                   "SWITCHBOARD_ACCOUNTS_FILE": str(accounts),
                   "SWITCHBOARD_HTTP_PORT": str(port)}

    def ignore_hang_up() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    server = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "serve", "--workers", str(workers)],
        env=env, stdout=subprocess.PIPE if terminal is None else terminal,
        stderr=subprocess.STDOUT, text=True,
        process_group=0, preexec_fn=ignore_hang_up if hang_up_ignored else None)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_http(f"{base}/healthz"))
        if workers > 1:
            time.sleep(1)  # both worker processes have started: one answering is not both
    except BaseException:
        stop_process(server, 60)
        raise
    return server, base


@pytest.mark.parametrize("workers", [1, 2])
def test_a_closed_terminal_stops_serve_cleanly(workers: int) -> None:
    """SIGHUP to its process group (the terminal or ssh session it ran in was closed) stops
    `serve` as SIGTERM does: it killed one process at once (exit 129), nothing in flight
    answered nor flushed; with --workers N, uvicorn's supervisor restarted its processes
    after each had died of it, and ran on."""
    server, _ = _serve_until_ready(workers, hang_up_ignored=False)
    try:
        os.killpg(server.pid, signal.SIGHUP)
        output = server.communicate(timeout=60)[0]
    finally:
        stop_process(server, 60)
    assert server.returncode == 0, output
    assert output.count('"ingest stopped"') == workers, output
    assert "Traceback" not in output


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_under_nohup_runs_on_once_its_terminal_is_closed(workers: int) -> None:
    """`nohup switchboard serve &`, then logging out: it serves on, with the processes it had
    (with --workers N they died of it, and were started again)."""
    server, base = _serve_until_ready(workers, hang_up_ignored=True)
    try:
        before = _group(server.pid)
        os.killpg(server.pid, signal.SIGHUP)
        time.sleep(2)
        assert server.poll() is None
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert _group(server.pid) == before
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    finally:
        stop_process(server, 60)
    assert server.returncode == 0, output
    assert output.count('"ingest stopped"') == workers, output


def _two_workers_on(terminal: int) -> subprocess.Popen[str]:
    """`serve --workers 2` with a pty's end as its terminal, closed here: only serve holds it,
    so closing the other end hangs serve up."""
    try:
        server, _ = _serve_until_ready(2, hang_up_ignored=False, terminal=terminal)
    finally:
        os.close(terminal)
    return server


def test_a_hang_up_sent_to_one_worker_leaves_its_logs_on_the_open_terminal() -> None:
    """`kill -HUP` to one worker process of `serve --workers N` run from a terminal (the
    terminal still open) pointed that worker's output at /dev/null for good: it served on,
    its log lines (its stop's too) gone. The supervisor was not told, nor stopped it."""
    master, terminal = os.openpty()
    output = bytearray()
    reading = threading.Thread(target=_read_terminal, args=(master, output), daemon=True)
    reading.start()
    server = _two_workers_on(terminal)
    try:
        worker = min(_workers(server.pid))
        os.kill(worker, signal.SIGHUP)
        time.sleep(1)
        assert worker in _workers(server.pid)
        assert os.readlink(f"/proc/{worker}/fd/2").startswith("/dev/pts/")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        stop_process(server, 60)
        reading.join(timeout=10)  # to the EIO once serve's processes have all gone
        os.close(master)
    said = output.decode(errors="replace")  # coloured console lines: it is a terminal
    assert server.returncode == 0, said
    assert said.count("ingest stopped") == 2, said
    assert f"Finished server process [{worker}]" in said, said


def test_a_worker_hung_up_by_its_closed_terminal_writes_nowhere_and_serve_stops_cleanly(
        ) -> None:
    """Once the terminal is closed, each write to it fails (EIO), the stop's log lines too:
    a worker that gets the hang-up sends its output nowhere, and serves until the
    supervisor stops it (here told after the worker, which a closed terminal may do)."""
    master, terminal = os.openpty()
    server = _two_workers_on(terminal)
    try:
        worker = min(_workers(server.pid))
        os.close(master)  # the terminal closed: the pty hung up
        os.kill(worker, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{worker}/fd/2") != "/dev/null":
            assert time.monotonic() < deadline, "the worker still writes to the closed terminal"
            time.sleep(0.1)
        assert worker in _workers(server.pid)
        os.killpg(server.pid, signal.SIGHUP)
        server.wait(timeout=60)
    finally:
        stop_process(server, 60)
    assert server.returncode == 0


def _read_terminal(master: int, into: bytearray) -> None:
    """What is written to the pty, until it is closed (EIO once no one has it open)."""
    with contextlib.suppress(OSError):
        while chunk := os.read(master, 65536):
            into += chunk


def test_serve_with_workers_exits_3_when_a_worker_fails_to_start() -> None:
    """uvicorn's supervisor stops every process once one fails to start (its app cannot be
    imported, as after a bad deployment), and just returns: `serve --workers N` exited 0,
    which its help does not say and `Restart=on-failure` took for a deliberate stop."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != MULTIPROCESS_DIR_ENV}
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_HTTP_PORT": str(free_port())}
    started = ("import sys; import switchboard.cli.serve as serve; "
               "serve.WORKER_APP = 'switchboard.no_such_module:app'; "
               "from switchboard.cli import main; sys.exit(main(['serve', '--workers', '2']))")
    done = subprocess.run([sys.executable, "-c", started], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert "switchboard.no_such_module" in done.stderr + done.stdout
    assert done.returncode == 3, done.stderr


def test_serve_with_workers_exits_3_when_a_restarted_worker_cannot_load_its_app(
        tmp_path: Path) -> None:
    """A worker process that died is started again, and reads the accounts file again: one
    edited into a bad one since had it die at once, every half second, a traceback each."""
    accounts = tmp_path / "accounts.toml"
    accounts.write_bytes(EXAMPLE_ACCOUNTS.read_bytes())
    server, _ = _serve_until_ready(2, hang_up_ignored=False, accounts=accounts)
    try:
        accounts.write_text("[[account]]\nname = \n")
        os.kill(min(_workers(server.pid)), signal.SIGKILL)
        output = server.communicate(timeout=60)[0]
    finally:
        stop_process(server, 60)
    assert server.returncode == 3, output
    assert output.count("the app failed to load") == 1, output


def _workers(pid: int) -> set[int]:
    """The worker processes `pid` (uvicorn's supervisor) started, not its resource tracker."""
    return {int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
            and _parent(int(entry.name)) == pid
            and b"spawn_main" in _read(entry / "cmdline")}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _group(pgid: int) -> set[int]:
    """The processes of a process group (the supervisor, its workers, multiprocessing's
    resource tracker)."""
    return {int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
            and _pgid(int(entry.name)) == pgid}


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
