"""The commands `switchboard run` prints are pasted into a shell: they must survive one."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from switchboard.accounts import load_accounts
from switchboard.cli.demo_simulator import on_simulator_port, warn_if_sending_past_the_simulator
from switchboard.cli.run import _prepare, _run_services
from switchboard.cli.run_banner import run_banner, warn_of_shared_groups
from switchboard.cli.startup import DEMO_ACCOUNTS, DEMO_RULES, invoked_as
from switchboard.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def pasted_commands(text: str) -> list[list[str]]:
    """Each curl command as a POSIX shell splits it: a backslash-newline continues the command
    outside quotes (shlex leaves a lone newline word there), but is kept inside them."""
    commands, block = [], ""
    for line in text.splitlines(keepends=True):
        if block or line.strip().startswith("curl"):
            block += line
            if not line.rstrip("\n").endswith("\\"):
                commands.append([word for word in shlex.split(block) if word.strip()])
                block = ""
    return commands


def test_every_printed_curl_command_parses_with_a_readable_body() -> None:
    banner = run_banner(base="http://127.0.0.1:8080", sim="http://127.0.0.1:8090",
                        bootstrap="127.0.0.1:9092", accounts=5, accounts_file=DEMO_ACCOUNTS,
                        rules_file=DEMO_RULES, program="switchboard")
    commands = pasted_commands(banner)
    assert len(commands) == 3
    for words in commands:
        assert words[-1].startswith("http://127.0.0.1:"), words
        for flag, value in itertools.pairwise(words):
            if flag != "-d":
                continue
            if value.startswith("@"):
                assert (REPO / value[1:]).is_file(), value
            else:
                assert orjson.loads(value)["text"] == "HELP"


def test_the_demo_credentials_are_shown_only_with_the_demo_accounts(tmp_path: Path) -> None:
    own = tmp_path / "accounts.toml"
    banner = run_banner(base="http://127.0.0.1:8080", sim="http://127.0.0.1:8090",
                        bootstrap="127.0.0.1:9092", accounts=1, accounts_file=own,
                        rules_file=None, program="switchboard")
    assert "demo-infobip" not in banner and "<account>" in banner
    [inbound] = pasted_commands(banner)
    assert inbound[-1] == "http://127.0.0.1:8090/_sim/inbound"


@pytest.mark.parametrize("prefix", ["", "staging."])
def test_the_tail_command_watches_this_install_s_topics(prefix: str) -> None:
    banner = run_banner(base="http://127.0.0.1:8080", sim="http://127.0.0.1:8090",
                        bootstrap="127.0.0.1:9092", accounts=5, accounts_file=DEMO_ACCOUNTS,
                        rules_file=DEMO_RULES, program=".venv/bin/switchboard",
                        name_prefix=prefix)
    [line] = [line for line in banner.splitlines() if line.endswith(" tail")]
    words = shlex.split(line)
    environment = dict(word.split("=", 1) for word in words if "=" in word)
    assert words[-2:] == [".venv/bin/switchboard", "tail"]
    assert environment.get("SWITCHBOARD_KAFKA_NAME_PREFIX", "") == prefix
    assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"


def _demo_banner() -> str:
    """What `run` prints with its defaults and the demo accounts, as the README shows it."""
    return run_banner(base="http://127.0.0.1:8080", sim="http://127.0.0.1:8090",
                      bootstrap="127.0.0.1:9092",
                      accounts=len(load_accounts(REPO / DEMO_ACCOUNTS)),
                      accounts_file=DEMO_ACCOUNTS, rules_file=DEMO_RULES,
                      program=invoked_as(".venv/bin/switchboard"))  # as `make run` starts it


def test_tail_is_started_before_the_requests_it_is_to_show() -> None:
    # tail starts at the newest record: pasted after the curl commands, as the banner had it
    # last, it showed none of the events they made.
    lines = _demo_banner().splitlines()
    tail = next(n for n, line in enumerate(lines) if line.endswith(" tail"))
    assert all(n > tail for n, line in enumerate(lines) if line.strip().startswith("curl"))


def test_the_readme_shows_what_run_prints() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### What `make run` shows"):]
    shown = section[section.index("```text\n") + len("```text\n"):]
    assert shown[:shown.index("```")].rstrip("\n") == _demo_banner()


def test_moving_the_simulator_warns_about_accounts_still_sending_to_its_old_port(
        capsys: pytest.CaptureFixture[str]) -> None:
    accounts = load_accounts(REPO / DEMO_ACCOUNTS)
    warn_if_sending_past_the_simulator(accounts, 8090)
    assert capsys.readouterr().err == ""
    warn_if_sending_past_the_simulator(accounts, 18090)
    warning = capsys.readouterr().err
    assert warning.startswith("warning: the simulator is on port 18090, but demo-infobip")
    # Where to change them: the sender's own accounts file, not this process.
    assert warning.rstrip().endswith("a sender given these accounts sends nothing here; give it "
                                     "a copy of the accounts file whose base_url names port "
                                     "18090")


def test_a_metrics_port_set_for_serve_is_said_to_be_unread_by_run(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(REPO)
    assert _prepare(Settings()) is not None
    assert "SWITCHBOARD_METRICS_PORT" not in capsys.readouterr().err
    assert _prepare(Settings().model_copy(update={"metrics_port": 9104})) is not None
    warning = capsys.readouterr().err
    assert warning.startswith("warning: SWITCHBOARD_METRICS_PORT=9104 is not read by run")
    assert "http://127.0.0.1:8080/metrics" in warning


def test_the_demo_accounts_follow_the_simulator_to_its_port() -> None:
    accounts = load_accounts(REPO / DEMO_ACCOUNTS)
    moved = on_simulator_port(accounts, 18090)
    urls = [str(account.outbound["base_url"]) for account in moved if account.outbound]
    assert urls and all(url.startswith("http://127.0.0.1:18090/") for url in urls)
    before = {a.name: str(a.outbound["base_url"]) for a in accounts if a.outbound}
    assert {a.name: str(a.outbound["base_url"]) for a in moved if a.outbound} == {
        name: url.replace(":8090/", ":18090/") for name, url in before.items()}


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:8090/"),
    ("0.0.0.0", "http://127.0.0.1:8090/"),  # every address: 127.0.0.1 among them
    ("10.1.2.3", "http://10.1.2.3:8090/"),  # that address alone: 127.0.0.1 was refused
    ("::1", "http://[::1]:8090/"),
])
def test_the_demo_accounts_send_to_the_host_the_simulator_listens_on(host: str,
                                                                     url: str) -> None:
    # With SWITCHBOARD_HTTP_HOST set to one address, `run` put the simulator there alone,
    # and every demo send failed on a refused connection to 127.0.0.1.
    moved = on_simulator_port(load_accounts(REPO / DEMO_ACCOUNTS), 8090, host)
    urls = [str(account.outbound["base_url"]) for account in moved if account.outbound]
    assert urls and all(u.startswith(url) for u in urls)


@pytest.mark.parametrize(("setting", "content", "error"), [
    ("accounts_file", None, "does not exist"),
    ("rules_file", None, "rules file .* does not exist"),
    ("rules_file", "[accounts]\nacme = 1\n", "account 'acme'"),
])
def test_run_says_what_is_wrong_with_its_files_before_starting_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        setting: str, content: str | None, error: str) -> None:
    monkeypatch.chdir(REPO)
    path = tmp_path / "file.toml"
    if content is not None:
        path.write_text(content)
    assert _prepare(Settings().model_copy(update={setting: path})) is None
    assert re.search(f"^error: .*{error}", capsys.readouterr().err)


def _script(directory: Path) -> Path:
    """A `switchboard` script, as pip installs one into an environment's bin directory."""
    directory.mkdir(parents=True)
    script = directory / "switchboard"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


# The banner said .venv/bin/switchboard whoever ran it: after a pip install into another
# environment, or in the Docker image, the tail command it printed did not exist.
def test_the_printed_command_is_switchboard_where_that_is_the_one_on_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script(tmp_path / "env" / "bin")
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}/usr/bin")
    assert invoked_as(str(script)) == "switchboard"


def test_the_printed_command_is_the_script_as_given_when_another_is_on_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = _script(tmp_path / "other" / "bin")
    monkeypatch.setenv("PATH", str(other.parent))
    monkeypatch.chdir(tmp_path)
    _script(tmp_path / "my env" / "bin")
    assert invoked_as("my env/bin/switchboard") == "'my env/bin/switchboard'"
    assert invoked_as(".venv/bin/switchboard") == ".venv/bin/switchboard"  # make run's


def test_the_printed_command_is_python_m_when_started_so() -> None:
    for main in ("switchboard/__main__.py", "switchboard/cli/__main__.py"):
        assert invoked_as(str(REPO / main), "/opt/py 3/bin/python") == \
            "'/opt/py 3/bin/python' -m switchboard"
    assert invoked_as(str(REPO / "switchboard/__main__.py")) == f"{sys.executable} -m switchboard"


def test_run_prints_the_command_as_it_was_started(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    async def started(*args: Any, on_ready: Callable[[], None], **kwargs: Any) -> None:
        on_ready()  # everything started: the banner is printed

    monkeypatch.setattr("switchboard.runall.run_all", started)
    monkeypatch.setattr(sys, "argv", ["/srv/sb env/bin/switchboard", "run"])
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.chdir(REPO)
    demo = _prepare(Settings())
    assert demo is not None
    assert _run_services(demo, "127.0.0.1:9092", None) == 0
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 '/srv/sb env/bin/switchboard' tail\n" in \
        capsys.readouterr().out



def test_run_on_a_cluster_of_its_own_choosing_warns_that_its_workers_join_the_groups(
        capsys: pytest.CaptureFixture[str]) -> None:
    """KAFKA_BOOTSTRAP_SERVERS left exported from a staging shell: run's demo sender joined
    switchboard-sender there, took a share of the real commands and failed them as
    unknown_account, and its keyword bot answered real contacts with the demo rules."""
    local = Settings().model_copy(update={"kafka_bootstrap_servers": None,
                                          "kafka_name_prefix": ""})
    warn_of_shared_groups(local)
    assert capsys.readouterr().err == ""
    cluster = local.model_copy(update={"kafka_bootstrap_servers": "kafka.staging:9092"})
    warn_of_shared_groups(cluster)
    warning = capsys.readouterr().err
    assert warning.startswith("warning: run's sender and keyword bot join the groups "
                              "switchboard-sender and switchboard-keywords on kafka.staging:9092")
    assert "SWITCHBOARD_KAFKA_NAME_PREFIX" in warning
    warn_of_shared_groups(cluster.model_copy(update={"kafka_name_prefix": "demo."}))
    assert capsys.readouterr().err == ""
