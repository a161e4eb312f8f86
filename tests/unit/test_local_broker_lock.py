"""One local broker per data directory: a second `run` or `kafka` from the same checkout is
refused before it touches the first one's files (Kafka's own lock fails only after the
config is rewritten and broker.log truncated)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from switchboard.localkafka import BrokerError, LocalKafka, free_port


def test_a_second_broker_on_the_same_data_dir_is_refused_and_the_first_untouched(
        tmp_path: Path) -> None:
    first = LocalKafka(tmp_path / "kafka", cache_dir=tmp_path / "cache")
    first._lock_data_dir()  # as start() does first
    first.log_path.write_text("the first broker's log\n")
    second = LocalKafka(tmp_path / "kafka", cache_dir=tmp_path / "cache", port=19092,
                        controller_port=19093)
    with pytest.raises(BrokerError, match=f"in use by another local broker \\(started by pid "
                                          f"{os.getpid()}\\).*SWITCHBOARD_DATA_DIR"):
        second.start()
    assert first.log_path.read_text() == "the first broker's log\n"
    assert not (tmp_path / "cache").exists()  # refused before fetching anything

    first.stop()  # lets the directory go
    second._lock_data_dir()
    second.stop()


@pytest.mark.parametrize(("taken", "setting"), [("port", "SWITCHBOARD_KAFKA_PORT"),
                                                ("controller_port",
                                                 "SWITCHBOARD_KAFKA_CONTROLLER_PORT")])
def test_a_port_in_use_names_the_setting_that_moves_it(tmp_path: Path, taken: str,
                                                       setting: str) -> None:
    """A taken controller port said to set SWITCHBOARD_KAFKA_PORT, which moves the other."""
    with socket.create_server(("127.0.0.1", 0)) as listener:  # another program's server
        ports = {"port": free_port(), "controller_port": free_port()}
        ports[taken] = listener.getsockname()[1]
        broker = LocalKafka(tmp_path / "kafka", cache_dir=tmp_path / "cache",
                            port=ports["port"], controller_port=ports["controller_port"])
        with pytest.raises(BrokerError) as refused:
            broker.start()
    assert str(refused.value) == (f"port {ports[taken]} on 127.0.0.1 is already in use; is a "
                                  f"broker already running? (set {setting} to choose another)")
    assert not (tmp_path / "cache").exists()  # refused before fetching anything
