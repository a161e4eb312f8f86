"""KAFKA_BOOTSTRAP_SERVERS written as other tools write addresses: said as what it is.

`PLAINTEXT://kafka:9092` (a broker's `listeners` line, copied) and `kafka:9092;kafka2:9092` were
refused with "write an IPv6 address in brackets", and `kafka 9092` was taken as a host with a
space in its name, to fail at every connection (exit 1, "Name or service not known")."""

from __future__ import annotations

import pytest

from tests.unit.fakes import run_cli


@pytest.mark.parametrize(("value", "says"), [
    ("PLAINTEXT://kafka:9092", "'PLAINTEXT://kafka:9092': write host:port, without "
                               "PLAINTEXT:// (kafka:9092)"),
    ("SASL_SSL://b-1.example.com:9096,SASL_SSL://b-2.example.com:9096",
     "without SASL_SSL:// (b-1.example.com:9096)"),
    ("kafka:9092;kafka2:9092", "'kafka:9092;kafka2:9092': host:port entries are separated by "
                               "commas, e.g. broker-1:9092,broker-2:9092"),
    ("kafka 9092", "'kafka 9092': host:port entries are separated by commas"),
])
def test_addresses_in_another_tools_form_are_refused_saying_so(value: str, says: str) -> None:
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": value}, "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: invalid settings: KAFKA_BOOTSTRAP_SERVERS: ")
    assert says in done.stderr
    assert "IPv6" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("value", ["kafka:9092, kafka2:9092", " kafka:9092 "])
def test_spaces_around_entries_are_still_taken(value: str) -> None:
    from switchboard.settings import Settings
    assert Settings(kafka_bootstrap_servers=value).kafka_bootstrap_servers == value
