"""`switchboard kafka`: a broker another process can use; Ctrl-C stops it, and so does a closed
terminal (SIGHUP); data survives."""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switchboard.localkafka import free_port
from switchboard.topics import RAW
from tests.integration.processes import REPO, broker_running, switchboard, wait_for_line


async def _stop_with_ctrl_c(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        code = await asyncio.to_thread(process.wait, 60)
    except subprocess.TimeoutExpired:
        process.kill()  # its JVM follows (PR_SET_PDEATHSIG): a failed test leaves none behind
        raise
    assert code == 0


async def _started(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """`switchboard kafka` and its output up to "ready in" (on a thread: the loop runs on)."""
    process = switchboard(env, "kafka")
    return process, await asyncio.to_thread(wait_for_line, process, "ready in")


def _environment(data_dir: Path, port: int) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"} | {
        "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_KAFKA_PORT": str(port),
        "SWITCHBOARD_KAFKA_CONTROLLER_PORT": str(free_port()), "SWITCHBOARD_LOG_FORMAT": "json"}


async def test_kafka_command_serves_another_process_and_keeps_data(tmp_path: Path) -> None:
    port = free_port()
    env = _environment(tmp_path, port)
    bootstrap = f"127.0.0.1:{port}"

    process, _ = await _started(env)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(RAW.name, b"kept across restarts")
        finally:
            await producer.stop()
    finally:
        await _stop_with_ctrl_c(process)
    assert not await asyncio.to_thread(broker_running, tmp_path), "Ctrl-C left the JVM running"

    process, lines = await _started(env)
    try:
        assert not any("fetching kafka jars" in line for line in lines), "cache was not reused"
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            partition = TopicPartition(RAW.name, sent.partition)
            consumer.assign([partition])
            consumer.seek(partition, sent.offset)
            record = await asyncio.wait_for(consumer.getone(), 30)
            assert record.value == b"kept across restarts"
        finally:
            await consumer.stop()
    finally:
        await _stop_with_ctrl_c(process)
    assert not await asyncio.to_thread(broker_running, tmp_path)


def _data_dir_free(data_dir: Path) -> bool:
    """Whether another `kafka` or `run` could take the data dir now (LocalKafka's lock)."""
    with open(data_dir / "kafka" / "switchboard.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


async def test_a_closed_terminal_stops_the_kafka_command_cleanly(tmp_path: Path) -> None:
    # SIGHUP ended it at once (exit -1): the data dir let go while its JVM still shut down,
    # and nothing said it stopped. Now as Ctrl-C or SIGTERM: the broker stopped, then exit 0.
    process, _ = await _started(_environment(tmp_path, free_port()))
    process.send_signal(signal.SIGHUP)
    try:
        output, _ = await asyncio.to_thread(process.communicate, None, 60)
    except subprocess.TimeoutExpired:
        process.kill()  # its JVM follows (PR_SET_PDEATHSIG): a failed test leaves none behind
        raise
    assert process.returncode == 0, output
    assert "stopping…" in output
    assert not await asyncio.to_thread(broker_running, tmp_path), "the JVM outlived it"
    assert _data_dir_free(tmp_path)


def _in_a_terminal(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """`switchboard kafka` in a terminal of its own (a pseudo-terminal it controls, as a shell
    in a terminal window gives it), once ready; and the terminal's end, to close it by."""
    terminal, its_end = os.openpty()

    def controlled_by_it() -> None:  # in the child, a session leader (start_new_session)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen([sys.executable, "-m", "switchboard.cli", "kafka"], env=env,
                               cwd=REPO, stdin=its_end, stdout=its_end, stderr=its_end,
                               start_new_session=True, preexec_fn=controlled_by_it)
    os.close(its_end)
    shown, deadline = b"", time.monotonic() + 120
    while b"ready in" not in shown:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([terminal], [], [], left)[0]:
            process.kill()
            raise AssertionError(f"not ready in 120 s:\n{shown.decode(errors='replace')}")
        shown += os.read(terminal, 4096)
    return process, terminal


def _still_running(process: subprocess.Popen[bytes], data_dir: Path) -> str:
    """What a `kafka` that outlived its terminal was doing (it failed so once, in a CI run
    beside another broker's benchmark): its state and kernel wait, its JVM, the broker's log."""
    def read(path: str) -> str:
        try:
            return Path(path).read_text(errors="replace").strip()
        except OSError as exc:
            return repr(exc)
    state = read(f"/proc/{process.pid}/stat").rpartition(")")[2].split()[:1]
    logs = sorted(data_dir.rglob("broker.log"))
    log_tail = logs[0].read_text(errors="replace")[-3000:] if logs else "(no broker.log)"
    return (f"state {state}, waiting in {read(f'/proc/{process.pid}/wchan')!r}, "
            f"its JVM {'running' if broker_running(data_dir) else 'gone'}; "
            f"broker.log ends:\n{log_tail}")


def test_closing_the_terminal_of_the_kafka_command_stops_it_cleanly(tmp_path: Path) -> None:
    # The kernel sends SIGHUP, and every write to the terminal then fails (EIO): "stopping…"
    # raised, and a stop that had ended the broker cleanly exited 1.
    process, terminal = _in_a_terminal(_environment(tmp_path, free_port()))
    os.close(terminal)
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        # Its output went to the closed terminal: say here where it was when the time was up.
        why = _still_running(process, tmp_path)
        process.kill()  # its JVM follows (PR_SET_PDEATHSIG): a failed test leaves none behind
        raise AssertionError(f"`kafka` still running 60 s after its terminal closed: {why}"
                             ) from None
    assert code == 0
    assert not broker_running(tmp_path), "the JVM outlived it"
    assert _data_dir_free(tmp_path)
