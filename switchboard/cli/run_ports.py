"""What stops `run` (and `kafka`) before a broker is started for nothing: the ports its
listeners are given, and another broker on its data dir."""

from __future__ import annotations

import socket
from pathlib import Path

from switchboard.cli.startup import port_taken
from switchboard.localkafka import data_dir_holder
from switchboard.serving import listen_addresses
from switchboard.settings import Settings

_KAFKA_PORTS = ("SWITCHBOARD_KAFKA_PORT", "SWITCHBOARD_KAFKA_CONTROLLER_PORT")


def kafka_ports_clash(settings: Settings) -> str | None:
    """Why the local broker cannot have its two ports, or None. SWITCHBOARD_KAFKA_PORT=9093,
    the controller's default, was a Java stack trace ("formatting Kafka storage failed")."""
    if settings.kafka_bootstrap_servers or settings.kafka_port != settings.kafka_controller_port:
        return None
    return (f"{' and '.join(_KAFKA_PORTS)} are both {settings.kafka_port}: the local broker "
            "needs one for clients and one for its controller")


def services_ports_clash(settings: Settings) -> str | None:
    """Why ingest or the simulator would take the other's port or one of the local broker,
    or None. A broker's was free before the broker started; ingest then failed to bind, with
    a traceback, exit 3. The other's was said as a port in use, exit 1, as if a retry could
    cure it."""
    if settings.http_port == settings.simulator_port:
        return (f"ingest and the simulator are both given port {settings.http_port} "
                "(SWITCHBOARD_HTTP_PORT and SWITCHBOARD_SIMULATOR_PORT): give each its own")
    if settings.kafka_bootstrap_servers:
        return None
    kafka = dict(zip((settings.kafka_port, settings.kafka_controller_port), _KAFKA_PORTS,
                     strict=True))
    for name, setting, port in (("ingest", "SWITCHBOARD_HTTP_PORT", settings.http_port),
                                ("the simulator", "SWITCHBOARD_SIMULATOR_PORT",
                                 settings.simulator_port)):
        # The broker is on 127.0.0.1 alone: only a listener there, or on every IPv4 address,
        # shares its ports (an IPv6 one is IPv6 only, as uvicorn binds it).
        shared = any(family == socket.AF_INET and address[0] in ("127.0.0.1", "0.0.0.0")
                     for family, address in listen_addresses(settings.http_host, port))
        if port in kafka and shared:
            return (f"{name} and the local Kafka broker are both given port {port} "
                    f"({setting} and {kafka[port]}): give each its own")
    return None


def already_running(data_dir: Path) -> str | None:
    """Why this `run` is the second on its data dir, or None. Said before the ports: `make
    run` twice was told that port 8080 is taken and to set SWITCHBOARD_HTTP_PORT, then the
    simulator's port, and only then that the first run's broker holds the data dir."""
    holder = data_dir_holder(data_dir)
    if holder is None:
        return None
    pid = f" (pid {holder})" if holder else ""
    return (f"another `switchboard run` or `switchboard kafka`{pid} is running on "
            f"{data_dir}: stop it first (Ctrl-C in its terminal), or give this one its own "
            "SWITCHBOARD_DATA_DIR and ports")


def ports_taken(settings: Settings) -> str | None:
    """Why ingest or the simulator could not listen, or None. Found out once they start,
    uvicorn would exit the whole process from inside the event loop: a traceback, the
    workers cut off, and nothing naming the setting that moves the port."""
    return port_taken(settings.http_host, [
        ("ingest", "SWITCHBOARD_HTTP_PORT", settings.http_port),
        ("the simulator", "SWITCHBOARD_SIMULATOR_PORT", settings.simulator_port)])
