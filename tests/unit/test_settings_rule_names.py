"""A rule over several settings names their environment variables too, as a single bad setting
is named (`http_port (SWITCHBOARD_HTTP_PORT)`): "SASL_SSL needs kafka_sasl_username and
kafka_sasl_password" left someone configuring by environment to guess the variables."""

from __future__ import annotations

from tests.unit.fakes import run_cli


def test_a_rule_over_several_settings_names_their_variables() -> None:
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "broker-1.example.com:9096",
                    "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
                   "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: invalid settings: SASL_SSL needs kafka_sasl_username and kafka_sasl_password "
        "(in the environment: SWITCHBOARD_KAFKA_SASL_USERNAME, "
        "SWITCHBOARD_KAFKA_SASL_PASSWORD)")


def test_words_that_are_no_setting_stay_as_they_are() -> None:
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "broker-1.example.com:9096",
                    "SWITCHBOARD_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                    "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
                   "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert "in the environment: SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL, " in done.stderr
    assert "SWITCHBOARD_OAUTHBEARER" not in done.stderr
