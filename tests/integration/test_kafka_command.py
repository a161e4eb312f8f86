"""`switchboard kafka`: a broker another process can use; Ctrl-C stops it; data survives."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switchboard.localkafka import free_port
from switchboard.topics import RAW
from tests.integration.processes import broker_running, switchboard, wait_for_line


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


async def test_kafka_command_serves_another_process_and_keeps_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    port = free_port()
    env.update(SWITCHBOARD_DATA_DIR=str(tmp_path), SWITCHBOARD_KAFKA_PORT=str(port),
               SWITCHBOARD_KAFKA_CONTROLLER_PORT=str(free_port()), SWITCHBOARD_LOG_FORMAT="json")
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
