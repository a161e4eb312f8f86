"""Free ports on 127.0.0.1 for brokers and servers, and whether one is taken."""

from __future__ import annotations

import socket
import threading

from switchboard.localkafka.errors import BrokerError

# Ports this process has handed out: they are bound only later (by a broker, a server).
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A port free on 127.0.0.1 now and never returned before by this process.

    The kernel may give a just-closed port to the next bind again (15 of 200,000 pairs of
    calls here): a broker's port and its controller's, chosen one after the other, would be
    the same, and that broker fails to start."""
    with _handed_out_lock:
        for _ in range(1000):
            port = _unbound_port()
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise BrokerError("no free port on 127.0.0.1")


def _unbound_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
