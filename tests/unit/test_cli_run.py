"""`switchboard run` and `kafka` when the cluster cannot be used: one error line, and a broker
started here stopped by this process."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from switchboard.cli.run import start_kafka
from switchboard.localkafka import free_port
from switchboard.settings import Settings
from tests.unit.fakes import StartedBroker


@pytest.mark.parametrize("refusal", [RuntimeError("cannot create topic x: error 38"),
                                     KeyboardInterrupt()])
def test_a_local_broker_stops_when_its_topics_are_not_created(
        monkeypatch: pytest.MonkeyPatch, refusal: BaseException) -> None:
    broker = StartedBroker()
    monkeypatch.setattr("switchboard.cli.run.local_broker", lambda settings: broker)

    async def refused(*args: Any, **options: Any) -> None:
        raise refusal

    monkeypatch.setattr("switchboard.topics.ensure_topics", refused)
    with pytest.raises(type(refusal)):
        start_kafka(Settings(kafka_bootstrap_servers=None))
    assert broker.stopped


@pytest.mark.parametrize("create_topics", ["true", "false"])
def test_run_on_a_cluster_it_cannot_reach_says_so_in_one_line(create_topics: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # nothing listens there
                   "SWITCHBOARD_CREATE_TOPICS": create_topics,
                   "SWITCHBOARD_HTTP_PORT": str(free_port()),
                   "SWITCHBOARD_SIMULATOR_PORT": str(free_port())}
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", "run"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "error: cannot " in result.stderr and "Kafka at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
    # Exported for `tail`, the variable was left in the shell that ran `make run` again: the
    # error read as the local broker failing to start.
    said = result.stderr.splitlines()[-1]
    assert said.endswith("; with KAFKA_BOOTSTRAP_SERVERS set, run starts no broker of its own "
                         "(unset it for the local one)"), said


@pytest.mark.parametrize("taken", ["SWITCHBOARD_HTTP_PORT", "SWITCHBOARD_SIMULATOR_PORT", "both"])
def test_run_on_a_port_in_use_names_the_setting_in_one_line(taken: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    ports = {"SWITCHBOARD_HTTP_PORT": str(free_port()),
             "SWITCHBOARD_SIMULATOR_PORT": str(free_port())}
    with socket.create_server(("127.0.0.1", 0)) as listener:  # another program's server
        if taken == "both":  # one port given to both: a setting, which a restart cannot cure
            ports["SWITCHBOARD_SIMULATOR_PORT"] = ports["SWITCHBOARD_HTTP_PORT"]
        else:
            ports[taken] = str(listener.getsockname()[1])
        env = clean | ports | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # never reached
        result = subprocess.run([sys.executable, "-m", "switchboard.cli", "run"], env=env,
                                capture_output=True, text=True, timeout=60, check=False)
    assert result.stderr.startswith("error: "), result.stderr
    if taken == "both":
        assert result.returncode == 2
        assert (f"both given port {ports['SWITCHBOARD_HTTP_PORT']} (SWITCHBOARD_HTTP_PORT and "
                "SWITCHBOARD_SIMULATOR_PORT)") in result.stderr
    else:
        assert result.returncode == 1
        assert f"127.0.0.1:{ports[taken]}" in result.stderr and f"set {taken}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "Kafka" not in result.stderr  # said before Kafka is started or used


@pytest.mark.parametrize("command", [("run",), ("simulate",),
                                     ("send", "demo-infobip", "+41790001111", "--text", "hi")])
def test_the_demo_accounts_missing_from_another_directory_says_where_to_run(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    """They are found relative to the working directory: elsewhere the error said only that
    examples/accounts.toml does not exist, as if the clone were broken."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
                   "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout, from elsewhere
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", *command], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert result.stderr == ("error: no examples/accounts.toml here: run this in the Switchboard "
                             "directory, or set SWITCHBOARD_ACCOUNTS_FILE\n")


def _run_with_a_local_broker(data_dir: Path, ingest_port: int) -> subprocess.CompletedProcess[str]:
    """`switchboard run` in a process of its own, as a new user runs it: no Kafka given (so it
    would start its own, in `data_dir`), nothing else of ours set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWITCHBOARD_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {"SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_HTTP_PORT": str(ingest_port),
            "SWITCHBOARD_SIMULATOR_PORT": str(free_port())}
    return subprocess.run([sys.executable, "-m", "switchboard.cli", "run"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_run_a_second_time_says_the_first_is_running_not_to_move_a_port(tmp_path: Path) -> None:
    """`make run` twice was told that port 8080 is taken and to set SWITCHBOARD_HTTP_PORT;
    moved, then the simulator's port; and only then that the first run's broker holds the
    data dir. The first run holds all three: the data dir is said first, with its pid."""
    broker_dir = tmp_path / "kafka"
    broker_dir.mkdir()
    with open(broker_dir / "switchboard.lock", "a+") as lock, \
            socket.create_server(("127.0.0.1", 0)) as first_runs_ingest:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as LocalKafka holds it
        lock.write("4242")
        lock.flush()
        result = _run_with_a_local_broker(tmp_path, first_runs_ingest.getsockname()[1])
    assert result.returncode == 1
    assert result.stderr == (
        f"error: another `switchboard run` or `switchboard kafka` (pid 4242) is running on "
        f"{broker_dir}: stop it first (Ctrl-C in its terminal), or give this one its own "
        "SWITCHBOARD_DATA_DIR and ports\n")
    assert result.stdout == ""  # no broker started


def test_run_on_a_data_dir_a_stopped_broker_used_starts_as_usual(tmp_path: Path) -> None:
    """The lock file stays when its broker has stopped: only a held lock is a run going."""
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "switchboard.lock").write_text("4242")
    with socket.create_server(("127.0.0.1", 0)) as listener:  # another program's server
        port = listener.getsockname()[1]
        result = _run_with_a_local_broker(tmp_path, port)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: ingest cannot listen on 127.0.0.1:{port}: ")


def test_run_whose_data_dir_cannot_be_used_says_so_in_one_line(tmp_path: Path) -> None:
    """A data dir the broker cannot write (left to root by `sudo make run`; here a file where
    the directory should be) stopped `run` with a traceback."""
    data_dir = tmp_path / "data"
    data_dir.write_text("")
    result = _run_with_a_local_broker(data_dir, free_port())
    assert result.returncode == 1
    assert result.stderr == (
        f"error: cannot start the local broker: Not a directory: {data_dir / 'kafka'} "
        "(SWITCHBOARD_DATA_DIR and SWITCHBOARD_CACHE_DIR say where it keeps its files)\n")
