"""free_port() is called several times before anything binds: the broker's port, its
controller's, the secured listeners', the servers'. The kernel may offer one port twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import switchboard.localkafka.ports as localports
from switchboard.localkafka import free_port


def test_a_port_is_never_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    offered: Iterator[int] = iter([40001, 40001, 40001, 40003])
    monkeypatch.setattr(localports, "_unbound_port", lambda: next(offered))
    monkeypatch.setattr(localports, "_handed_out", set())
    assert [free_port(), free_port()] == [40001, 40003]


def test_ports_are_free_and_distinct() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port <= 65535 for port in ports)
