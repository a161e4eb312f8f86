"""The simulator benchmark's set-up: its accounts file holds the simulator fixtures' accounts, and
the raw send it makes for each provider is accepted by a simulator serving them. No timing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bench.__main__ import BENCHES
from bench.loadgen import _read_response
from bench.simulator import accounts_toml, send_request
from simulator.app import create_simulator_app
from switchboard.accounts import load_accounts, parse_accounts
from switchboard.providers import PROVIDERS
from tests.outbound_fixtures import load_simulator_accounts
from tests.unit.fakes import served


def test_the_accounts_file_holds_the_fixtures_accounts(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml())
    written = load_accounts(path)
    fixtures = parse_accounts({"accounts": {
        name: account for provider in PROVIDERS
        for name, account in load_simulator_accounts(provider)["accounts"].items()}})
    assert sorted((a.provider, a.name) for a in written) == \
        sorted((a.provider, a.name) for a in fixtures)
    for account in fixtures:
        loaded = written.get(account.provider, account.name)
        assert loaded is not None
        assert (loaded.outbound, loaded.auth) == (account.outbound, account.auth)
    assert "simulator" in BENCHES


async def test_each_providers_send_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml())
    app = create_simulator_app(load_accounts(path), None, status_delay_s=0)
    async with app.router.lifespan_context(app), served(app) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for provider in PROVIDERS:
            request = await send_request(client, port, provider, "http://127.0.0.1:1")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                status = await asyncio.wait_for(_read_response(reader), 30)
            finally:
                writer.close()
            assert 200 <= status < 300, provider
        sends = (await client.get("/_sim/sends")).json()["sends"]
    assert sorted(send["provider"] for send in sends) == sorted(PROVIDERS)
