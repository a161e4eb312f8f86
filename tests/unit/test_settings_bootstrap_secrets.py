"""KAFKA_BOOTSTRAP_SERVERS written as a URL with a login (`SASL_SSL://alice:s3cret@broker:9093`,
as some hosted clusters give their address) is refused without its password in the message:
the value itself was masked in `(got ...)`, but the refusal quoted it whole, twice, on stderr
and in any log that keeps a service's output."""

from __future__ import annotations

import pytest

from tests.unit.fakes import run_cli


@pytest.mark.parametrize("value", [
    "SASL_SSL://alice:s3cret@broker:9093",
    "kafka:9092,SASL_SSL://alice:s3cret@broker:9093/",
])
def test_a_refused_url_with_a_password_is_not_shown_with_it(value: str) -> None:
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": value}, "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert "s3cret" not in done.stderr
    assert "without SASL_SSL:// (broker:9093)" in done.stderr  # still says what to write


@pytest.mark.parametrize("value", ["alice:s3cret@broker:9093", "kafka:9092, alice:s3cret@broker"])
def test_a_login_in_an_address_is_refused_saying_so_without_the_password(value: str) -> None:
    # It was taken for an IPv6 address without brackets, the password quoted twice.
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": value}, "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert "s3cret" not in done.stderr
    assert "kafka_sasl_username" in done.stderr and "IPv6" not in done.stderr


def test_a_login_past_the_shown_part_of_a_long_value_is_not_shown_in_part() -> None:
    value = "broker-number-1.example.com:9092,alice:s3cret-password-that-is-long@b2:9092"
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": value}, "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert "s3cret" not in done.stderr
