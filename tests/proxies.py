"""What httpx itself does with the proxy variables of the environment, for tests that check
Switchboard's reading of them against it."""

from __future__ import annotations

import httpx


def httpx_refuses() -> bool:
    """Whether httpx makes no client of its own here (it reads the proxy variables then):
    what switchboard.proxy's check is to refuse, for the sender and the token requests alike."""
    try:
        httpx.AsyncClient()
    except (ValueError, ImportError):
        return True
    return False
