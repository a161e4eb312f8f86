"""With an OAUTHBEARER login every command that reaches Kafka asks the token endpoint through the
proxy variables: one httpx cannot use is one `error:` line naming it, exit 2, before Kafka is
asked. Kafka at 127.0.0.1:1 is never reached: asked, it would end the start with exit 1 and
"cannot reach Kafka" instead. (`serve`, which retries Kafka for ever, is checked as a process:
tests/integration/test_kafka_oauth_proxy.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from switchboard.cli import main
from switchboard.cli.startup import oauth_proxy_problem
from switchboard.settings import get_settings
from tests.proxies import httpx_refuses

EXAMPLE_ACCOUNTS = Path(__file__).resolve().parents[2] / "examples" / "accounts.toml"
PASSWORD = "a-proxy-password-3"
COMMANDS = {
    "worker keywords": ["worker", "keywords"],
    "worker sender": ["worker", "sender"],
    "tail": ["tail"],
    "send": ["send", "demo-infobip", "+14155550100", "--text", "hi"],
    "replay": ["replay", "--dry-run"],
}


@pytest.fixture
def oauth_env(no_proxies: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    env = no_proxies
    env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    env.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    env.delenv("SWITCHBOARD_METRICS_PORT", raising=False)
    env.setenv("SWITCHBOARD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    env.setenv("SWITCHBOARD_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    env.setenv("SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL", "https://login.example.com/oauth2/token")
    env.setenv("SWITCHBOARD_KAFKA_OAUTH_CLIENT_ID", "switchboard")
    env.setenv("SWITCHBOARD_KAFKA_OAUTH_CLIENT_SECRET", "an-oauth-client-secret")
    env.setitem(sys.modules, "socksio", None)  # as without httpx[socks]
    return env


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("variable", "proxy", "said"), [
    ("HTTPS_PROXY", f"ftp://proxy:{PASSWORD}@127.0.0.1:1", "Unknown scheme for proxy URL"),
    ("ALL_PROXY", "socks5://127.0.0.1:1", "the 'socksio' package is not installed"),
], ids=["unknown-scheme", "socks-without-socksio"])
def test_a_proxy_the_token_requests_cannot_use_is_one_line_and_exit_2(
        command: str, variable: str, proxy: str, said: str, oauth_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Before, the first connection's token request raised: a traceback, exit 1.
    oauth_env.setenv(variable, proxy)
    assert main(COMMANDS[command]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith(f"error: {variable} (or {variable.lower()}) of the environment "
                           "names a proxy httpx cannot use: "), line
    assert said in line
    assert line.endswith("(the Kafka OAuth token endpoint, SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL, "
                         "is asked through it)"), line
    assert PASSWORD not in captured.out + captured.err
    assert "Kafka at" not in captured.err  # said before Kafka is asked


@pytest.mark.parametrize(("no_proxy", "refused"), [
    (None, True),
    ("login.example.com", True),  # httpx still makes a proxy of each variable
    ("localhost, *", False),  # httpx then reads no proxy variable
])
def test_the_check_says_what_httpx_does(
        no_proxy: str | None, refused: bool, oauth_env: pytest.MonkeyPatch) -> None:
    oauth_env.setenv("HTTP_PROXY", "ftp://127.0.0.1:1")  # for an https token endpoint too
    if no_proxy is not None:
        oauth_env.setenv("NO_PROXY", no_proxy)
    assert httpx_refuses() is refused
    assert (oauth_proxy_problem(get_settings()) is not None) is refused


def test_without_an_oauth_login_the_proxy_is_not_its_concern(
        oauth_env: pytest.MonkeyPatch) -> None:
    oauth_env.setenv("HTTPS_PROXY", "ftp://127.0.0.1:1")
    oauth_env.setenv("SWITCHBOARD_KAFKA_SASL_MECHANISM", "PLAIN")
    for name in ("TOKEN_URL", "CLIENT_ID", "CLIENT_SECRET"):
        oauth_env.delenv(f"SWITCHBOARD_KAFKA_OAUTH_{name}")
    oauth_env.setenv("SWITCHBOARD_KAFKA_SASL_USERNAME", "switchboard")
    oauth_env.setenv("SWITCHBOARD_KAFKA_SASL_PASSWORD", "a-kafka-password")
    assert oauth_proxy_problem(get_settings()) is None
