"""The demo accounts and the simulator they send to: `run` moves them with the simulator's
port and host, `simulate` (whose sender runs elsewhere) can only warn."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from switchboard.settings import Settings
from switchboard.urls import origin

if TYPE_CHECKING:
    from switchboard.accounts import Accounts

DEFAULT_SIMULATOR_PORT: int = Settings.model_fields["simulator_port"].default
# Where examples/accounts.toml sends: the simulator on its default port.
DEMO_SIMULATOR = f"http://127.0.0.1:{DEFAULT_SIMULATOR_PORT}/"
# Listening on every address: the demo accounts reach the simulator on 127.0.0.1.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def warn_if_sending_past_the_simulator(accounts: Accounts, simulator_port: int) -> None:
    """Accounts of your own that send to the simulator's default port reach nothing once it
    has moved (`run` moves the shipped demo accounts with it: see on_simulator_port;
    `simulate` cannot, as the sender reads them in a process of its own)."""
    stale = [account.name for account in accounts
             if str(account.outbound.get("base_url", "")).startswith(DEMO_SIMULATOR)]
    if simulator_port != DEFAULT_SIMULATOR_PORT and stale:
        # "change them too" did not say where: the sender reads its own accounts file.
        print(f"warning: the simulator is on port {simulator_port}, but {', '.join(stale)} "
              f"send to port {DEFAULT_SIMULATOR_PORT} (their outbound.base_url): a sender "
              "given these accounts sends nothing here; give it a copy of the accounts file "
              f"whose base_url names port {simulator_port}", file=sys.stderr, flush=True)


def on_simulator_port(accounts: Accounts, simulator_port: int,
                       host: str = "127.0.0.1") -> Accounts:
    """The demo accounts, sending to the simulator wherever SWITCHBOARD_SIMULATOR_PORT and
    SWITCHBOARD_HTTP_HOST put it (examples/accounts.toml names 127.0.0.1 and its default
    port). A wildcard host (0.0.0.0) listens on 127.0.0.1 too; any other is the only address
    the simulator answers on, and 127.0.0.1 was refused."""
    from switchboard.accounts import Accounts

    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    moved = origin(host, simulator_port) + "/"
    return Accounts([
        account.model_copy(update={"outbound": account.outbound | {
            "base_url": moved + str(account.outbound["base_url"]).removeprefix(DEMO_SIMULATOR)}})
        if str(account.outbound.get("base_url", "")).startswith(DEMO_SIMULATOR) else account
        for account in accounts])
