"""A malformed KAFKA_BOOTSTRAP_SERVERS is one error line and exit 2, from every command that
uses Kafka: aiokafka found it only when a client started (a traceback; `serve` retried)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiokafka.conn import collect_hosts

from switchboard.bootstrap_servers import bootstrap_server
from switchboard.settings import Settings
from tests.unit.fakes import run_cli

ACCOUNTS = str(Path(__file__).parents[2] / "examples" / "accounts.toml")
COMMANDS = [
    ("worker", "sender"),
    ("tail", "--limit", "1"),
    ("send", "demo-infobip", "+41790001111", "--text", "hi"),
    ("replay", "--dry-run"),
    ("run",),
    ("serve",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_command_refuses_a_port_that_is_not_a_number(command: tuple[str, ...]) -> None:
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "localhost:notaport",
                    "SWITCHBOARD_ACCOUNTS_FILE": ACCOUNTS}, *command)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "KAFKA_BOOTSTRAP_SERVERS" in lines[0]
    assert "'localhost:notaport'" in lines[0]


@pytest.mark.parametrize("value", [":9092", "host:0", "host:70000", "a:9092,,b:9092",
                                   "a:9092,", "::1:9092", "[::1]9092", "[::1]:"])
def test_malformed_lists_are_refused(value: str) -> None:
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": value}, "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: invalid settings: KAFKA_BOOTSTRAP_SERVERS: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(("entry", "parsed"), [
    ("127.0.0.1:9092", ("127.0.0.1", 9092)),
    ("b-1.example.kafka.us-east-1.amazonaws.com:9096",
     ("b-1.example.kafka.us-east-1.amazonaws.com", 9096)),
    ("[::1]:9092", ("::1", 9092)),
    ("kafka:1", ("kafka", 1)),
    ("kafka:65535", ("kafka", 65535)),
    ("kafka", ("kafka", 9092)),  # aiokafka's default port, as it took it before
    # An IPv6 address alone, with brackets or without: port 9092, as aiokafka takes it.
    ("[::1]", ("::1", 9092)),
    ("::1", ("::1", 9092)),
    ("2001:db8::1", ("2001:db8::1", 9092)),
    ("2001:db8:0:0:0:0:2:1", ("2001:db8:0:0:0:0:2:1", 9092)),  # no address before :1
    ("[2001:db8::1:9092]", ("2001:db8::1:9092", 9092)),
])
def test_host_port_entries_are_taken(entry: str, parsed: tuple[str, int]) -> None:
    assert bootstrap_server(entry) == parsed
    assert collect_hosts(entry)[0][:2] == parsed  # as the clients will read it


@pytest.mark.parametrize("entry", ["", ":9092", "host:", "host:0", "host:65536",
                                   "host:+9", "host:٣", "::1:9092", "[]", "[]:9092",
                                   "[::1]:", "kafka:9092:1", "fe80::1%eth0"])
def test_other_entries_are_not(entry: str) -> None:
    with pytest.raises(ValueError):
        bootstrap_server(entry)


@pytest.mark.parametrize(("entry", "hint"), [
    # An address and a port or one address (aiokafka's reading: the address, port 9092)?
    ("::1:9092", "[::1]:9092 for port 9092, [::1:9092] for the address alone"),
    ("2001:db8::1:9093", "[2001:db8::1]:9093 for port 9093, [2001:db8::1:9093] for the"),
])
def test_an_ipv6_address_that_may_end_in_a_port_needs_its_brackets(entry: str, hint: str
                                                                   ) -> None:
    with pytest.raises(ValueError, match=re.escape(hint)):
        bootstrap_server(entry)


def test_ipv6_addresses_alone_are_taken_in_the_setting() -> None:
    value = "[::1],2001:db8::1, [2001:db8::2]:9093"
    assert Settings(kafka_bootstrap_servers=value).kafka_bootstrap_servers == value
