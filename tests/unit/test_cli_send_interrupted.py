"""`send` on Ctrl-C: what it says on stderr at each point, and that `send --help` names each of
those answers. The help said Ctrl-C tells whether the command "may have been published",
while a command Kafka had acknowledged is said to have been published."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from switchboard.cli import build_parser, main

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"
ARGV = ["send", "demo-infobip", "+41790001111", "--text", "hi", "--id", "c-1", "--wait", "30"]


async def _interrupted() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(30)  # ended by the Ctrl-C, not waited out


async def _no_answer(*args: Any) -> None:
    await _interrupted()


async def _reached(*args: Any) -> None:
    pass


async def _before_the_ack(*args: Any, **kwargs: Any) -> None:
    await _interrupted()


async def _after_the_ack(*args: Any, on_published: Callable[[], object], **kwargs: Any) -> None:
    on_published()  # Kafka acknowledged the command; the wait for its result goes on
    await _interrupted()


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["send", "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal


@pytest.mark.parametrize(("reach", "send_command", "said"), [
    (_no_answer, _reached, "was not published"),
    (_reached, _before_the_ack, "may have been published"),
    (_reached, _after_the_ack, "was published"),
])
@pytest.mark.usefixtures("sigint_ignored")
def test_what_ctrl_c_says_is_what_send_help_says_it_says(
        reach: Callable[..., Any], send_command: Callable[..., Any], said: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("switchboard.cli.send.reach_kafka", reach)
    monkeypatch.setattr("switchboard.outbox.send_command", send_command)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    assert main(ARGV) == 130
    assert f"interrupted: command c-1 {said}" in capsys.readouterr().err
    assert said in _help(capsys).partition("130 on Ctrl-C")[2]
