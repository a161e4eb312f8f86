"""`switchboard send --wait` against the real broker, where it ends without a result of this
command: it says whether a sender is running (then busy with the command: here its provider, on
127.0.0.1, does not answer) or none is; Ctrl-C once the command is stored says it was
published; a reused --id's earlier result is said to be that. It said "is a sender running?"
to both, "may have been published" of a stored command, and printed the earlier result alone,
as if the new text had gone out."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson

from consumers.workers import sender_worker
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from switchboard.topics import OUTBOUND
from tests.accounts_toml import accounts_toml
from tests.integration.stack import StackWatcher, isolated_prefix, stack_topics
from tests.kafka_helpers import collect_until
from tests.provider_servers import Provider

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


def _env(bootstrap: str, prefix: str, accounts_file: Path) -> dict[str, str]:
    return os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                         "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix,
                         "SWITCHBOARD_ACCOUNTS_FILE": str(accounts_file)}


async def _send(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "send", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_no_result_without_a_sender_says_none_is_running(kafka_bootstrap: str) -> None:
    prefix = isolated_prefix()
    await stack_topics(kafka_bootstrap, prefix)
    code, _, said = await _send(_env(kafka_bootstrap, prefix, EXAMPLE_ACCOUNTS),
                             "demo-infobip", "+41790002222", "--text", "hi", "--id", "alone-1",
                             "--wait", "1")
    assert code == 3, said
    assert said.startswith("error: command alone-1 published, but no result within 1 s: no "
                           f"sender is running (its consumer group {prefix}switchboard-sender "
                           "has no member"), said
    assert "switchboard worker sender" in said, said


def _account(base_url: str, tmp_path: Path) -> tuple[str, dict[str, Any], Path]:
    """An Infobip account sending to `base_url`, and an accounts file naming it."""
    name = f"acct-{uuid.uuid4().hex[:8]}"
    fields = {"provider": "infobip",
              "auth": {"scheme": "basic", "username": "ib", "secrets": ["send-webhook-pass"]},
              "outbound": {"base_url": base_url, "api_key": "send-api-key", "sender": "InfoSMS",
                           "timeout_s": 60}}
    accounts_file = tmp_path / "accounts.toml"
    accounts_file.write_text(accounts_toml({name: fields}))
    return name, fields, accounts_file


async def test_no_result_from_a_busy_sender_says_it_is_running(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    async with Provider(hang=True).running() as provider:
        account, fields, accounts_file = _account(provider.base_url, tmp_path)
        prefix = isolated_prefix()
        await stack_topics(kafka_bootstrap, prefix)
        settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_name_prefix=prefix)
        async with sender_worker(settings, parse_accounts({"accounts": {account: fields}})
                                 ) as runtime:
            running = asyncio.create_task(runtime.run())
            try:
                await asyncio.wait_for(runtime.ready.wait(), 60)
                code, _, said = await _send(_env(kafka_bootstrap, prefix, accounts_file),
                                            account, "+41790002222", "--text", "hi",
                                            "--id", "busy-1", "--wait", "3")
                assert provider.requests == 1  # the sender has it: its provider has not answered
            finally:
                provider.release()
                runtime.stop()
                await running
    assert code == 3, said
    assert said.startswith("error: command busy-1 published, but no result within 3 s: a "
                           f"sender is running (1 in {prefix}switchboard-sender) and has not "
                           "finished it yet"), said
    assert "unless its --id was handled over an hour ago" in said, said  # --id was given
    assert "is a sender running" not in said, said


async def test_a_reused_id_says_its_result_is_the_earlier_commands(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    async with Provider().running() as provider:
        account, fields, accounts_file = _account(provider.base_url, tmp_path)
        prefix = isolated_prefix()
        await stack_topics(kafka_bootstrap, prefix)
        settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_name_prefix=prefix)
        env = _env(kafka_bootstrap, prefix, accounts_file)
        async with sender_worker(settings, parse_accounts({"accounts": {account: fields}})
                                 ) as runtime:
            running = asyncio.create_task(runtime.run())
            try:
                await asyncio.wait_for(runtime.ready.wait(), 60)
                first = await _send(env, account, "+41790002222", "--text", "first",
                                    "--id", "again-1", "--wait", "60")
                second = await _send(env, account, "+41790002222", "--text", "second",
                                     "--id", "again-1", "--wait", "60")
            finally:
                runtime.stop()
                await running
    assert first[0] == 0 and "note:" not in first[2], first
    assert second[0] == 0, second
    assert second[1] == first[1]  # the earlier result, published again by the sender
    assert provider.requests == 1  # the second text never went out
    assert second[2].startswith("note: command id again-1 was handled before ("), second
    assert second[2].rstrip().endswith("this is that result; this command was not sent (an id "
                                       "is sent at most once: give a new --id)"), second


async def test_ctrl_c_while_waiting_says_the_command_was_published(kafka_bootstrap: str) -> None:
    prefix = isolated_prefix()
    await stack_topics(kafka_bootstrap, prefix)
    async with StackWatcher(kafka_bootstrap, prefix, (OUTBOUND.name,)) as outbound:
        before = await outbound.snapshot()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard", "send", "demo-infobip", "+41790002222",
            "--text", "hi", "--id", "stopped-1", "--wait", "120",
            env=_env(kafka_bootstrap, prefix, EXAMPLE_ACCOUNTS),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            found = await collect_until(outbound, before, lambda found: bool(found),
                                        timeout_s=60)
            [record] = found[OUTBOUND.name]
            assert orjson.loads(record.value)["id"] == "stopped-1"
            # The broker's acknowledgement reaches `send` just after the record is readable.
            await asyncio.sleep(1)
            process.send_signal(signal.SIGINT)  # stored: it now waits for a result
            out, err = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 130, err
    assert out == b""
    assert err.decode().startswith("interrupted: command stopped-1 was published; its result "
                                   "was not waited for"), err
