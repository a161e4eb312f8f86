"""`switchboard kafka`: a broker another process can use; Ctrl-C stops it; data survives."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switchboard.localkafka import free_port
from switchboard.topics import RAW


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "kafka"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "ready in" in line:
            return process, lines
    process.kill()
    raise AssertionError("switchboard kafka did not become ready:\n" + "".join(lines))


def _stop_with_ctrl_c(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0


def _jvm_running(data_dir: Path) -> bool:
    result = subprocess.run(["pgrep", "-f", f"{data_dir}/kafka/server.properties"],
                            capture_output=True, check=False)
    return result.returncode == 0


async def test_kafka_command_serves_another_process_and_keeps_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    port = free_port()
    env.update(SWITCHBOARD_DATA_DIR=str(tmp_path), SWITCHBOARD_KAFKA_PORT=str(port),
               SWITCHBOARD_KAFKA_CONTROLLER_PORT=str(free_port()), SWITCHBOARD_LOG_FORMAT="json")
    bootstrap = f"127.0.0.1:{port}"

    process, _ = _start(env)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(RAW.name, b"kept across restarts")
        finally:
            await producer.stop()
    finally:
        _stop_with_ctrl_c(process)
    assert not _jvm_running(tmp_path), "Ctrl-C left the JVM running"

    process, lines = _start(env)
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
        _stop_with_ctrl_c(process)
    assert not _jvm_running(tmp_path)
