"""The README's copy-paste examples against the demo accounts (examples/accounts.toml), with
ingest and the simulator in process: a new user pastes them into a shell with `make run` going.

Each curl command is expanded by bash as that shell would (continuation lines, quotes, `$body`,
`$(... openssl ...)`), with curl replaced by a function that prints its arguments, then sent to
the app its URL's port is (8080 ingest, 8090 the simulator). Each `switchboard` command line
parses, and names demo accounts and Switchboard's topics.
"""

from __future__ import annotations

import base64
import importlib
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from ingest.app import create_app
from simulator.app import create_simulator_app
from switchboard.accounts import load_accounts
from switchboard.cli import build_parser
from switchboard.providers import PROVIDERS
from switchboard.settings import Settings
from switchboard.topics import ALL_TOPICS, MESSAGE_INBOUND, MESSAGE_STATUS
from tests.fakes import KeepingProducer

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
ACCOUNTS = load_accounts(REPO / "examples" / "accounts.toml")
DEMO_NAMES = {account.name for account in ACCOUNTS}
INGEST, SIMULATOR = "127.0.0.1:8080", "127.0.0.1:8090"
# Where the README keeps a webhook that ingest refuses, to make a dead letter.
REFUSED_IN = "### Dead letters and replay"
# curl stands for this function: each call prints its arguments, NUL-terminated, then a \x01.
RECORDING_CURL = "curl() { printf '%s\\0' \"$@\"; printf '\\1\\0'; }\n"


@dataclass(frozen=True)
class Curl:
    section: str
    args: list[str]

    def __str__(self) -> str:
        return f"{self.section}: curl {shlex.join(self.args)}"[:160]


def _fenced_blocks() -> list[tuple[str, str]]:
    """(heading above it, text) of each ```sh and ```text block."""
    blocks: list[tuple[str, str]] = []
    heading, fence = "", None
    lines: list[str] = []
    for line in README.splitlines():
        if fence is None and line.startswith("#"):
            heading = line
        elif fence is None and line in ("```sh", "```text"):
            fence, lines = line, []
        elif fence is not None and line == "```":
            blocks.append((heading, "\n".join(lines)))
            fence = None
        elif fence is not None:
            lines.append(line)
    return blocks


def _commands(text: str) -> list[str]:
    """The block's commands, continuation lines joined as the shell joins them."""
    commands, current = [], ""
    for line in text.splitlines():
        current += line.strip() + "\n"
        if not line.endswith("\\"):
            commands.append(current)
            current = ""
    return commands


def _expanded_curls() -> list[Curl]:
    """Every curl command of the README's blocks, after bash expanded it (a block's variable
    assignments run before it, as they would in the reader's shell)."""
    curls: list[Curl] = []
    for section, text in _fenced_blocks():
        kept = [command for command in _commands(text)
                if command.startswith("curl ") or re.match(r"[a-z_]+='[^']*'\n$", command)]
        if not any(command.startswith("curl ") for command in kept):
            continue
        script = RECORDING_CURL + "".join(kept)
        out = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, check=True,
                             timeout=30).stdout.decode()
        for call in out.split("\x01\0")[:-1]:
            curls.append(Curl(section, call.split("\0")[:-1]))
    return curls


CURLS = _expanded_curls()


def _request(curl: Curl) -> httpx.Request:
    """The request this curl command makes (the options the README uses, and no other)."""
    method, url, data = None, None, None
    headers: list[tuple[str, str]] = []
    args = iter(curl.args)
    for arg in args:
        if arg in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers.append((name.strip(), value.strip()))
        elif arg in ("-d", "--data"):
            data = next(args)
        elif arg == "-u":
            user, _, password = next(args).partition(":")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers.append(("authorization", f"Basic {token}"))
        elif arg == "-X":
            method = next(args)
        elif arg.startswith("-"):
            raise AssertionError(f"{curl}: an option this test does not read: {arg}")
        else:
            url = arg
    assert url is not None, curl
    body = None
    if data is not None:
        # curl -d @file sends the file without its line breaks.
        text = (REPO / data[1:]).read_text() if data.startswith("@") else data
        body = re.sub(r"[\r\n]", "", text).encode()
    return httpx.Request(method or ("POST" if body is not None else "GET"), url,
                         headers=headers, content=body)


async def _send(app: Starlette, request: httpx.Request) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        return await client.send(request)


def test_the_readme_shows_curl_commands_for_ingest_and_the_simulator() -> None:
    # Parsing the README into nothing would pass every test below.
    hosts = {urlsplit(str(_request(curl).url)).netloc for curl in CURLS}
    assert hosts == {INGEST, SIMULATOR}
    assert any(curl.section == REFUSED_IN for curl in CURLS)


@pytest.mark.parametrize("curl", [c for c in CURLS if INGEST in " ".join(c.args)], ids=str)
async def test_a_webhook_example_is_answered_as_the_readme_says(curl: Curl) -> None:
    # bash ran the $(... openssl ...) of a signed example: an empty header is its failure.
    assert not any(arg.endswith(": ") for arg in curl.args), f"{curl}: is openssl installed?"
    request = _request(curl)
    provider, account = request.url.path.split("/")[2:4]
    assert account in DEMO_NAMES, curl
    producer = KeepingProducer()
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), ACCOUNTS)
    app.state.handler.producer = producer
    response = await _send(app, request)
    if curl.section == REFUSED_IN:
        assert response.status_code == 400, (curl, response.text)
        assert response.json()["error"] == "unprocessable_payload"
    else:
        assert response.status_code == 200, (curl, response.text)
        topics = {record.topic for record in producer.published}
        assert topics & {MESSAGE_INBOUND.name, MESSAGE_STATUS.name}, (curl, topics)
        assert ACCOUNTS.get(provider, account) is not None


@pytest.mark.parametrize("curl", [c for c in CURLS if SIMULATOR in " ".join(c.args)], ids=str)
async def test_a_simulator_example_is_taken_for_a_demo_account(curl: Curl) -> None:
    request = _request(curl)
    named = parse_qs(request.url.query.decode()).get("account", [])
    if request.content:
        named.append(orjson.loads(request.content).get("account"))
    assert set(named) <= DEMO_NAMES, curl
    app = create_simulator_app(ACCOUNTS, None, status_delay_s=0)
    response = await _send(app, request)
    assert response.is_success, (curl, response.status_code, response.text)


def _switchboard_lines() -> list[str]:
    """Each `switchboard` command line of the README's blocks and inline code."""
    lines = [command for _, text in _fenced_blocks() for command in _commands(text)
             if "bin/switchboard " in command]
    lines += re.findall(r"`([^`\n]*\.venv/bin/switchboard [^`\n]*)`", README)
    return lines


@pytest.mark.parametrize("line", _switchboard_lines(),
                         ids=lambda line: " ".join(line.split())[:120])
def test_a_switchboard_command_line_parses_and_names_what_there_is(line: str) -> None:
    words = shlex.split(line.replace("\\\n", " "))
    args = words[next(i for i, word in enumerate(words) if word.endswith("bin/switchboard")) + 1:]
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:  # --help exits 0, a refusal 2
        assert exc.code == 0, f"switchboard refuses the README's {args}"
        return
    if parsed.command == "send":
        assert parsed.account in DEMO_NAMES
    for topic in getattr(parsed, "topic", None) or []:
        assert topic in {spec.name for spec in ALL_TOPICS}
    if getattr(parsed, "bot", None):
        module, _, function = parsed.bot.partition(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_the_webhook_url_s_provider_names_are_the_providers() -> None:
    listed = re.search(r"the account's `provider`: (.*?) \(", README, re.S)
    assert listed is not None
    assert re.findall(r"`([a-z-]+)`", listed.group(1)) == list(PROVIDERS)
