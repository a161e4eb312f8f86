"""`run` and `kafka` given one port for two of their listeners: said in one `error:` line,
exit 2 (a setting), before a broker is started. SWITCHBOARD_KAFKA_PORT=9093, the first port a
user moving Kafka off a taken 9092 may try, is the controller's default."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Iterator

import pytest

import switchboard.cli.run as run_module
from switchboard.cli.run import cmd_run
from switchboard.settings import Settings


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A broker started is the failure here; the signal handlers cmd_run takes are given
    back."""
    def started(settings: Settings) -> None:
        raise AssertionError("a broker was started")

    monkeypatch.setattr(run_module, "local_broker", started)
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "SWITCHBOARD_ACCOUNTS_FILE", "SWITCHBOARD_RULES_FILE"):
        monkeypatch.delenv(name, raising=False)
    handlers = {signum: signal.getsignal(signum)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _error(capsys: pytest.CaptureFixture[str], kafka_only: bool, settings: Settings) -> str:
    code = cmd_run(argparse.Namespace(kafka_only=kafka_only), settings)
    err = capsys.readouterr().err
    assert code == 2, err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize("kafka_only", [False, True], ids=["run", "kafka"])
def test_kafka_on_its_controllers_port_is_refused(
        capsys: pytest.CaptureFixture[str], kafka_only: bool) -> None:
    # It was a Java stack trace: "formatting Kafka storage failed: ... two listeners on the
    # same port", exit 1.
    line = _error(capsys, kafka_only, Settings(kafka_port=9093, kafka_controller_port=9093))
    assert line == ("error: SWITCHBOARD_KAFKA_PORT and SWITCHBOARD_KAFKA_CONTROLLER_PORT are "
                    "both 9093: the local broker needs one for clients and one for its "
                    "controller")


@pytest.mark.parametrize(("setting", "port", "said"), [
    ("http_port", 9092, "ingest and the local Kafka broker are both given port 9092 "
                        "(SWITCHBOARD_HTTP_PORT and SWITCHBOARD_KAFKA_PORT)"),
    ("simulator_port", 9093, "the simulator and the local Kafka broker are both given port "
                             "9093 (SWITCHBOARD_SIMULATOR_PORT and "
                             "SWITCHBOARD_KAFKA_CONTROLLER_PORT)"),
    # Said as a port in use, exit 1, as if starting again could cure it.
    ("simulator_port", 8080, "ingest and the simulator are both given port 8080 "
                             "(SWITCHBOARD_HTTP_PORT and SWITCHBOARD_SIMULATOR_PORT)"),
])
def test_a_service_on_a_port_already_given_is_refused(
        capsys: pytest.CaptureFixture[str], setting: str, port: int, said: str) -> None:
    # A broker's port was free when run looked; the broker took it, then ingest failed to
    # bind: uvicorn's error, a traceback logged, exit 3.
    settings = Settings(kafka_port=9092, kafka_controller_port=9093, http_host="127.0.0.1",
                        http_port=8080, simulator_port=8090)
    line = _error(capsys, False, settings.model_copy(update={setting: port}))
    assert line == f"error: {said}: give each its own"


def test_a_service_on_ipv6_only_may_share_the_brokers_port_number() -> None:
    # The broker listens on 127.0.0.1 alone: ::1 (IPv6 only, as uvicorn binds it) is free.
    from switchboard.cli.run_ports import services_ports_clash

    assert services_ports_clash(Settings(http_host="::1", http_port=9092,
                                            kafka_port=9092)) is None
    # Nor is a cluster of the user's a port of this machine's.
    assert services_ports_clash(Settings(http_port=9092, kafka_port=9092,
                                            kafka_bootstrap_servers="127.0.0.1:9092")) is None
