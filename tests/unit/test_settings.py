from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from switchboard.cli import build_parser
from switchboard.cli.run import local_broker
from switchboard.cli.worker import cmd_worker
from switchboard.settings import Settings, env_var_names
from tests.unit.fakes import run_cli, settings_error

EXAMPLE_ACCOUNTS = Path(__file__).resolve().parents[2] / "examples" / "accounts.toml"


def test_environment_overrides_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text('http_port = 9000\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    monkeypatch.setenv("SWITCHBOARD_HTTP_PORT", "9100")
    settings = Settings()
    assert settings.http_port == 9100
    assert settings.log_level == "DEBUG"


def test_bootstrap_servers_use_the_standard_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "10.0.0.1:9092"
    assert not settings.uses_local_kafka
    assert "KAFKA_BOOTSTRAP_SERVERS" in env_var_names()


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CONFIG", "/nonexistent/switchboard.toml")
    with pytest.raises(FileNotFoundError, match="SWITCHBOARD_CONFIG"):
        Settings()


def test_log_level_and_format_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_LOG_LEVEL", "debug")
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "JSON")
    settings = Settings()
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")


def test_the_local_brokers_heap_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert local_broker(Settings()).heap == "512m"
    monkeypatch.setenv("SWITCHBOARD_KAFKA_HEAP", "2g")
    assert local_broker(Settings()).heap == "2g"


@pytest.mark.parametrize(("env", "args", "says"), [
    ({"SWITCHBOARD_HTTP_PORT": "abc"}, ("schema",),
     "invalid settings: http_port (SWITCHBOARD_HTTP_PORT): Input should be a valid integer"),
    ({"SWITCHBOARD_LOG_LEVEL": "verbose", "SWITCHBOARD_HTTP_WORKERS": "0"}, ("schema",),
     "http_workers (SWITCHBOARD_HTTP_WORKERS): Input should be greater than or equal to 1"),
    ({"SWITCHBOARD_CONFIG": "/nonexistent/switchboard.toml"}, ("schema",),
     "SWITCHBOARD_CONFIG=/nonexistent/switchboard.toml: no such file"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
      "SWITCHBOARD_ACCOUNTS_FILE": "/nonexistent/accounts.toml"}, ("serve",),
     "accounts file /nonexistent/accounts.toml does not exist"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, ("worker", "sender"),
     "set SWITCHBOARD_ACCOUNTS_FILE"),
    # A path that is a directory, or a file saved as Latin-1: not a traceback either.
    ({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "SWITCHBOARD_ACCOUNTS_FILE": "/"}, ("serve",),
     "accounts file /: cannot read it: Is a directory"),
    ({"SWITCHBOARD_RULES_FILE": "/", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, ("run",),
     "rules file /: cannot read it: Is a directory"),  # (never a local broker from a test)
    ({"SWITCHBOARD_KAFKA_HEAP": "1 GB"}, ("kafka",),
     "kafka_heap (SWITCHBOARD_KAFKA_HEAP): String should match pattern"),
    # Ports: before a socket call fails with a traceback, or uvicorn listens elsewhere.
    ({"SWITCHBOARD_KAFKA_PORT": "70000"}, ("kafka",),
     "kafka_port (SWITCHBOARD_KAFKA_PORT): Input should be less than or equal to 65535"),
    ({"SWITCHBOARD_HTTP_PORT": "0"}, ("schema",),
     "http_port (SWITCHBOARD_HTTP_PORT): Input should be greater than or equal to 1"),
    ({"SWITCHBOARD_SIMULATOR_PORT": "-5"}, ("schema",), "simulator_port"),
    ({"SWITCHBOARD_METRICS_PORT": "70000"}, ("schema",), "metrics_port"),
    ({}, ("serve", "--port", "99999"), "argument --port: a port is 1-65535, not 99999"),
    # Given to providers as the status webhook URL of every message the sender sends.
    ({"SWITCHBOARD_PUBLIC_URL": "hooks.example.com"}, ("schema",),
     "public_url (SWITCHBOARD_PUBLIC_URL): must be an http(s) URL"),
    ({}, ("simulate", "--port", "0"), "argument --port: must be at least 1, not 0"),
    ({}, ("tail", "--limit", "x"), "argument --limit: 'x' is not a whole number"),
    ({}, ("worker", "keywords", "--bot", "examples.echo_bot:bot"),
     "--bot is for `worker bot`, not `worker keywords`"),
])
def test_configuration_mistakes_are_one_error_line_not_a_traceback(
        env: dict[str, str], args: tuple[str, ...], says: str) -> None:
    result = run_cli(env, *args)
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_a_misspelt_setting_in_the_config_file_is_named_without_its_value(
        tmp_path: Path) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text('htp_port = 9000\nkafka_sasl_pasword = "hunter2"\n')
    result = run_cli({"SWITCHBOARD_CONFIG": str(config)}, "schema")
    assert result.returncode == 2
    assert ("htp_port: no such setting in SWITCHBOARD_CONFIG (did you mean http_port?); "
            "kafka_sasl_pasword: no such setting in SWITCHBOARD_CONFIG (did you mean "
            "kafka_sasl_password?)") in result.stderr
    assert "hunter2" not in result.stderr


def test_a_config_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text("http_port = [\n")
    result = run_cli({"SWITCHBOARD_CONFIG": str(config)}, "schema")
    assert result.returncode == 2
    assert f"SWITCHBOARD_CONFIG={config}: not valid TOML" in result.stderr


def test_a_taken_metrics_port_is_one_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                       "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                       "SWITCHBOARD_METRICS_PORT": str(port)}, "worker", "keywords")
    assert result.returncode == 2
    assert (f"error: cannot serve metrics on 127.0.0.1:{port}: Address already in use (set "
            "SWITCHBOARD_METRICS_PORT to choose another port)\n") in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ("worker", "keywords"),
    ("tail",),  # these three said only "error: KafkaConnectionError: Unable to bootstrap …"
    ("replay",),
    ("send", "demo-infobip", "+41790001111", "--text", "hi"),
])
def test_a_command_that_cannot_reach_kafka_says_so_in_one_line(args: tuple[str, ...]) -> None:
    result = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS)}, *args)
    assert result.returncode == 1
    assert "error: cannot reach Kafka at 127.0.0.1:1 (KafkaConnectionError" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_config_file_that_is_not_utf8_is_one_error_line(tmp_path: Path) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_bytes('log_level = "DEBUG"  # café\n'.encode("latin-1"))  # an editor's choice
    result = run_cli({"SWITCHBOARD_CONFIG": str(config)}, "schema")
    assert result.returncode == 2
    assert (f"error: SWITCHBOARD_CONFIG={config}: cannot read it: not UTF-8 text (byte 0xe9 "
            "at offset 26)") in result.stderr
    assert "Traceback" not in result.stderr


def test_a_config_file_that_cannot_be_opened_is_one_error_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text("http_port = 9000\n")
    opened = Path.open

    def refused(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == config:  # as for a file of another user's (tests may run as root)
            raise PermissionError(13, "Permission denied")
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refused)
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    said = str(settings_error())
    assert said == f"SWITCHBOARD_CONFIG={config}: cannot read it: Permission denied"


def test_an_accounts_file_that_is_not_utf8_is_one_error_line(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_bytes(EXAMPLE_ACCOUNTS.read_bytes() + "# café\n".encode("latin-1"))
    result = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                   "SWITCHBOARD_ACCOUNTS_FILE": str(accounts)}, "worker", "sender")
    assert result.returncode == 2
    assert f"error: accounts file {accounts}: cannot read it: not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_env_secret_that_is_not_set_is_named_without_pydantics_prefix(
        tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[accounts.acme]\nprovider = "infobip"\nauth = { scheme = "basic", '
                        'username = "acme", secrets = ["env:ACME_WEBHOOK_PASSWORD"] }\n')
    result = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                   "SWITCHBOARD_ACCOUNTS_FILE": str(accounts)}, "worker", "sender")
    assert result.returncode == 2
    assert result.stderr == (f"error: {accounts}: account 'acme': auth.secrets.0: environment "
                             "variable ACME_WEBHOOK_PASSWORD is not set\n")


def test_simulate_checks_its_ingest_url_as_the_setting_is_checked(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Parsed only: a simulator that started would listen on its default port.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--ingest-url", "127.0.0.1:8080"])
    assert ("argument --ingest-url: must be an http(s) URL, e.g. http://127.0.0.1:8080"
            in capsys.readouterr().err)


def test_ctrl_c_while_a_worker_starts_is_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # as the event loop raises it once Ctrl-C cancelled the start

    monkeypatch.setattr("consumers.workers.run_worker", interrupted)
    args = build_parser().parse_args(["worker", "keywords"])
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", accounts_file=EXAMPLE_ACCOUNTS)
    try:
        code = cmd_worker(args, settings)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C during start-up ended the worker in a traceback")
    assert code == 130


def test_a_refused_url_setting_is_quoted_without_its_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The error line quotes what was given; a URL may carry Basic credentials (user:password@).
    monkeypatch.setenv("SWITCHBOARD_PUBLIC_URL", "htps://acme:pa55-word@hooks.example.com")
    said = str(settings_error())
    assert "public_url (SWITCHBOARD_PUBLIC_URL): must be an http(s) URL" in said
    assert "pa55" not in said and "'htps://acme:***@hooks.example.com'" in said


def test_a_misspelt_environment_variable_is_a_warning_naming_the_setting_meant() -> None:
    # pydantic-settings ignores variables it does not know: SWITCHBOARD_KAFKA_BOOTSTRAP left
    # `run` starting a local broker, SWITCHBOARD_METRIC_PORT left the workers unscraped, and
    # nothing said why.
    result = run_cli({"SWITCHBOARD_KAFKA_BOOTSTRAP": "10.0.0.1:9092",
                   "switchboard_metric_port": "9100",  # read in any case, like the settings
                   "SWITCHBOARD_ZZZ": "s3cr3t-value", "SWITCHBOARD_HTTP_PORT": "8081",
                   "SWITCHBOARD_LOG_FORMAT": "json"}, "schema")
    assert result.returncode == 0, result.stderr
    warnings = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert [(w["level"], w["variable"], w["did_you_mean"]) for w in warnings] == [
        ("warning", "SWITCHBOARD_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP_SERVERS"),
        ("warning", "SWITCHBOARD_ZZZ", None),
        ("warning", "switchboard_metric_port", "SWITCHBOARD_METRICS_PORT"),
    ]
    assert "s3cr3t-value" not in result.stderr and "9092" not in result.stderr


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in env_var_names():
        short = "_" + name.removeprefix("SWITCHBOARD_")  # `SWITCHBOARD_A` / `_B` in a row
        assert f"`{name}`" in readme or f"`{short}`" in readme, name


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1:8080"),
                                           ("::", "http://[::]:8080"),
                                           ("::1", "http://[::1]:8080")])
def test_without_a_public_url_ingest_is_reached_at_its_host_as_a_url_writes_it(
        host: str, url: str) -> None:
    """`http://:::8080` is no URL: the simulator (and the per-message status URL of token
    accounts) could never reach ingest on an IPv6 host."""
    assert Settings(http_host=host, http_port=8080).ingest_url == url
    assert httpx.URL(url).port == 8080
