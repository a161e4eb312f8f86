"""`switchboard worker` processes and SIGHUP: a `kill -HUP` (a process manager's reload) stops
no worker, at its start or while it runs: the sender, with nothing to reload, says it ignores
it; the keyword bot reloads its rules and runs on. (SIGHUP from its terminal closing stops a
worker: tests/unit/test_worker_signals.py.)"""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from switchboard.events import MessageEvent
from switchboard.localkafka import free_port
from switchboard.records import event_record
from tests.integration.processes import (
    killed_if_left,
    switchboard,
    wait_for_line,
    worker_environment,
)


def _environment(kafka_bootstrap: str) -> dict[str, str]:
    return worker_environment(kafka_bootstrap, f"it-hup-{uuid.uuid4().hex[:8]}.") | {
        "SWITCHBOARD_LOG_FORMAT": "json"}


def test_sighup_stops_the_sender_neither_at_its_start_nor_while_it_runs(
        kafka_bootstrap: str) -> None:
    # During its start SIGHUP killed it (exit -1): its default, until the sender consumed;
    # then it stopped it, so that a process manager's reload (systemd's ExecReload, say)
    # ended the sender, exit 0, which Restart=on-failure does not start again.
    env = _environment(kafka_bootstrap) | {"SWITCHBOARD_METRICS_PORT": str(free_port())}
    with killed_if_left(switchboard(env, "worker", "sender")) as process:
        wait_for_line(process, "metrics and probes served")  # its handlers are taken
        process.send_signal(signal.SIGHUP)  # while it reaches Kafka, reads its ledger
        wait_for_line(process, "SIGHUP ignored while the worker starts", timeout_s=30)
        wait_for_line(process, "worker started")
        process.send_signal(signal.SIGHUP)
        wait_for_line(process, "SIGHUP ignored: this worker has nothing to reload", timeout_s=30)
        assert process.poll() is None  # still running
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert '"event": "worker stopped"' in output


def test_sighup_reloads_the_keyword_bots_rules_and_it_runs_on(kafka_bootstrap: str) -> None:
    keywords = switchboard(_environment(kafka_bootstrap), "worker", "keywords")
    with killed_if_left(keywords) as process:
        wait_for_line(process, "worker started")
        process.send_signal(signal.SIGHUP)
        wait_for_line(process, "rules reloaded", timeout_s=30)
        assert process.poll() is None  # still running
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert '"event": "worker stopped"' in output


SLOW_BOT = '''
import asyncio, sys

async def bot(event):
    print("SLOW BOT CALLED", flush=True)
    await asyncio.sleep(600)
'''


async def test_a_second_stop_signal_ends_a_worker_whose_clean_stop_waits(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    # A clean stop finishes the handler in flight first: one taking minutes held the worker
    # (a second Ctrl-C did nothing) until SIGKILL.
    (tmp_path / "slowbot.py").write_text(SLOW_BOT)
    env = _environment(kafka_bootstrap) | {"PYTHONPATH": str(tmp_path)}
    prefix = env["SWITCHBOARD_KAFKA_NAME_PREFIX"]
    with killed_if_left(switchboard(env, "worker", "bot", "--bot", "slowbot:bot")) as process:
        wait_for_line(process, "worker started")
        event = MessageEvent.model_validate({
            "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip",
            "account": "demo-infobip", "channel": "sms", "direction": "inbound",
            "from": "+4179000111", "to": "+15550000000", "text": "hello",
            "received_at": datetime.now(UTC), "raw_id": "r"})
        record = event_record(event)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(prefix + record.topic, record.value, key=record.key,
                                         headers=list(record.headers))
        finally:
            await producer.stop()
        wait_for_line(process, "SLOW BOT CALLED")
        process.send_signal(signal.SIGTERM)  # waits for the bot's answer
        await asyncio.sleep(2)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert '"event": "second stop signal' in output
