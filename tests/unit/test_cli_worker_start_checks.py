"""`switchboard worker`'s files and settings checked before it connects to anything: a rules
file the bots refuse, a proxy variable the sender cannot use. Kafka at 127.0.0.1:1 is never
reached: asked, it would end the start with exit 1 and "cannot reach Kafka" instead, and a
broker that does not answer at all only after 10 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from switchboard.cli import main

EXAMPLE_ACCOUNTS = Path(__file__).resolve().parents[2] / "examples" / "accounts.toml"
PASSWORD = "a-proxy-password-1"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    monkeypatch.delenv("SWITCHBOARD_METRICS_PORT", raising=False)
    for name in ("ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "all_proxy", "https_proxy",
                 "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("content", "said"), [
    # A typo in the TOML: the line is named.
    ('[accounts.shop]\nfallback = "hi\n', "{path}: not valid TOML: Illegal character '\\n' "
                                         "(at line 2, column 15)"),
    # Valid TOML the rules refuse: the account and the rule are named.
    ('[accounts.shop]\n[[accounts.shop.rules]]\nkeyword = "hours"\n',
     "{path}: account 'shop': rule 1"),
])
@pytest.mark.parametrize("worker", ["keywords", "autoreply"])
def test_a_rules_file_the_bots_refuse_is_said_before_kafka_is_asked(
        content: str, said: str, worker: str, tmp_path: Path, env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(content)
    env.setenv("SWITCHBOARD_RULES_FILE", str(rules))
    assert main(["worker", worker]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("error: " + said.format(path=rules)), line
    assert "Kafka" not in captured.err


def test_your_bot_s_rules_file_is_checked_too(
        tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mybot_start_checks.py").write_text("async def answer(event):\n    return None\n")
    env.chdir(tmp_path)  # bots are imported from the current directory
    rules = tmp_path / "rules.toml"
    rules.write_text("[accounts.shop\n")
    env.setenv("SWITCHBOARD_RULES_FILE", str(rules))
    assert main(["worker", "bot", "--bot", "mybot_start_checks:answer"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {rules}: not valid TOML: ")


def test_a_missing_rules_file_is_said_before_kafka_is_asked(
        tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rulez.toml"
    env.setenv("SWITCHBOARD_RULES_FILE", str(rules))
    assert main(["worker", "keywords"]) == 2
    assert capsys.readouterr().err == f"error: rules file {rules} does not exist\n"


def test_a_proxy_the_sender_cannot_use_is_said_before_kafka_is_asked(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("HTTPS_PROXY", f"ftp://sender:{PASSWORD}@proxy.invalid:21")
    assert main(["worker", "sender"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: HTTPS_PROXY (or https_proxy) of the environment names a "
                          "proxy httpx cannot use"), err
    assert PASSWORD not in err


@pytest.mark.parametrize("refusal", [
    GroupAuthorizationFailedError("switchboard-sender"),
    TopicAuthorizationFailedError({"switchboard.outbound.v1"}),
], ids=["group", "topic"])
def test_kafka_refusing_the_worker_its_group_or_topics_is_one_error_line(
        refusal: Exception, env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # What aiokafka's start raises when an ACL is missing: it was logged as an unexpected
    # error, level critical, with its traceback.
    async def refused(*args: Any, **kwargs: Any) -> None:
        raise refusal

    env.setattr("consumers.workers.run_worker", refused)
    assert main(["worker", "sender"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (f"error: Kafka refused worker sender: {refusal} (the ACLs of its "
                            "Kafka user do not allow it)\n")
    assert "critical" not in captured.out + captured.err
