"""What several subcommands do before their job: find the accounts, pick the event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from switchboard.settings import Settings

if TYPE_CHECKING:
    from switchboard.accounts import Accounts

T = TypeVar("T")
DEMO_ACCOUNTS = Path("examples/accounts.toml")
DEMO_RULES = Path("examples/rules.toml")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed (uvicorn[standard] brings it on Linux).

    The workers are mostly socket I/O (Kafka, provider HTTP); uvloop does that with
    noticeably less CPU than the default loop, which is what ingest already gets from uvicorn.
    """
    try:
        import uvloop
    except ImportError:  # e.g. Windows: the standard loop works, only slower
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def cannot_reach_kafka(servers: str, exc: Exception) -> str:
    """The one line every command says when Kafka is not there. aiokafka's error says only
    "Unable to bootstrap"; why (refused, TLS, login) is in the log lines it wrote before."""
    return f"error: cannot reach Kafka at {servers} ({exc}); the log lines above say why"


def accounts_or_exit(settings: Settings, *, demo: bool) -> Accounts | None:
    """The accounts, or None once the problem is printed. Only demo tools (`run`, `simulate`)
    fall back to the example accounts: a service must not quietly run on demo credentials."""
    from switchboard.accounts import AccountsError, load_accounts

    path = settings.accounts_file or (DEMO_ACCOUNTS if demo else None)
    if path is None:
        print("error: set SWITCHBOARD_ACCOUNTS_FILE (see examples/accounts.toml)",
              file=sys.stderr)
        return None
    try:
        return load_accounts(path)
    except AccountsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
