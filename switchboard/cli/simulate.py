"""`switchboard simulate`: the provider simulator alone, calling back an ingest run elsewhere."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from switchboard.cli.demo_simulator import warn_if_sending_past_the_simulator
from switchboard.cli.serve import STARTUP_FAILURE, StoppingServer
from switchboard.cli.startup import (
    DEMO_ACCOUNTS,
    accounts_or_exit,
    port_taken,
    unresolved_host,
)
from switchboard.logs import scrub
from switchboard.settings import Settings
from switchboard.urls import origin


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the provider simulator alone (send APIs + webhooks back to ingest)."""
    from simulator.app import create_simulator_app

    accounts = accounts_or_exit(settings, demo=True)
    if accounts is None:
        return 2
    ingest_url = args.ingest_url or settings.ingest_url
    app = create_simulator_app(accounts, ingest_url,
                               webhook_queue=settings.simulator_webhook_queue)
    port = args.port or settings.simulator_port
    if unresolved := unresolved_host(settings.http_host):
        print(unresolved[1], file=sys.stderr)
        return unresolved[0]
    if taken := port_taken(settings.http_host, [
            ("the simulator", "SWITCHBOARD_SIMULATOR_PORT or --port", port)]):
        print(f"error: {taken}", file=sys.stderr)
        return 1
    # Masked: the URL may carry Basic credentials (user:password@host) for a proxy in front.
    print(f"Simulator on {origin(settings.http_host, port)}, calling ingest at "
          f"{scrub(ingest_url)} "
          f"({len(accounts)} accounts from {settings.accounts_file or DEMO_ACCOUNTS})",
          flush=True)
    # A sender reads these accounts on its own: moved, the simulator is where none of the
    # demo accounts sends (only `run` moves them with it).
    warn_if_sending_past_the_simulator(accounts, port)
    # Stopped cleanly by a closed terminal (SIGHUP) too, as `serve` is: uvicorn.run left it
    # to end the process at once, and had SIGTERM's clean stop exit 143.
    # workers=1: left unset, uvicorn reads WEB_CONCURRENCY, set for another app (`auto`) a
    # traceback at start; the simulator is one process.
    server = StoppingServer(uvicorn.Config(app, host=settings.http_host, port=port, workers=1,
                                           log_config=None, access_log=False))
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl-C before the server took SIGINT over
        return 130
    return 0 if server.started else STARTUP_FAILURE
