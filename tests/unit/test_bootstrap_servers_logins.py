"""A login written into KAFKA_BOOTSTRAP_SERVERS (user:password@host:port) is refused at start,
and no part of it reaches the error line. The mask stopped at a `/`, `;`, space or quote, all
of which a generated password may hold (base64 has `/`): what came before was printed."""

from __future__ import annotations

import pytest

from switchboard.bootstrap_servers import check_bootstrap_servers, masked_logins
from tests.unit.fakes import run_cli

SECRET_PARTS = ("svc", "Zq9", "x7Lp")


@pytest.mark.parametrize("value", [
    "svc:Zq9/x7Lp@kafka:9092",
    "svc:Zq9;x7Lp@kafka:9092",
    "svc:Zq9 x7Lp@kafka:9092",
    "svc:Zq9'x7Lp@kafka:9092",
    'svc:Zq9"x7Lp@kafka:9092',
    "svc:Zq9@x7Lp@kafka:9092",
    "kafka:9092,svc:Zq9/x7Lp@kafka:9093",
])
def test_no_part_of_a_login_is_shown(value: str) -> None:
    with pytest.raises(ValueError, match="a login does not go in the address") as raised:
        check_bootstrap_servers(value)
    assert not any(part in str(raised.value) for part in SECRET_PARTS), raised.value
    shown = masked_logins(repr(value))
    assert "***@kafka:909" in shown
    assert not any(part in shown for part in SECRET_PARTS), shown


def test_the_error_line_of_a_command_shows_no_part_of_a_login() -> None:
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092,svc:Zq9/x7Lp@kafka:9093"},
                   "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert "a login does not go in the address" in done.stderr
    assert not any(part in done.stderr for part in SECRET_PARTS), done.stderr
    assert "'***@kafka:9093'" in done.stderr  # up to the last @: a password may hold a comma


def test_a_login_with_a_comma_is_not_shown_either() -> None:
    """The comma splits the list: the entry before it (`svc:Zq9`) was refused first, as a port
    that is not a number, and quoted whole."""
    value = "kafka:9092,svc:Zq9,x7Lp@kafka:9093"
    with pytest.raises(ValueError, match="a login does not go in the address") as raised:
        check_bootstrap_servers(value)
    assert not any(part in str(raised.value) for part in SECRET_PARTS), raised.value
    done = run_cli({"KAFKA_BOOTSTRAP_SERVERS": value}, "tail", "--limit", "1")
    assert done.returncode == 2, done.stderr
    assert not any(part in done.stderr for part in SECRET_PARTS), done.stderr
