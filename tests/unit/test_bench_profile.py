"""The in-process profile runs the webhook path as served, and every request it times is
answered 200 (a harness timing 401s or duplicates would flatter ingest). Nothing here is timed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from bench import profile, served
from bench.ingest import ACCOUNTS, delivery_report, webhook_headers
from switchboard import heap
from switchboard.serving import INGEST_HTTP


def test_the_benchmark_reports_are_distinct_and_authenticated() -> None:
    assert delivery_report(1) != delivery_report(2)
    scheme, _, token = webhook_headers()["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token) == b"bench:bench-password-123"
    assert '"bench-password-123"' in ACCOUNTS


async def test_every_profiled_request_is_stored(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "REQUESTS_PER_ROUND", 20)
    monkeypatch.setattr(profile, "ROUNDS", 1)
    monkeypatch.setattr(heap, "settle", lambda: None)  # the test process's collector
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    assert await profile.run(accounts) == 0


def test_ingest_is_served_as_serve_serves_it() -> None:
    command = served.ingest_command(8000)
    assert command[command.index("--http") + 1] == INGEST_HTTP
    assert "--proxy-headers" in command and "--no-access-log" in command
    assert command[command.index("--host") + 1] == "127.0.0.1"


async def test_the_timed_server_counts_each_served_call_and_times_the_app_in_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import ceiling

    monkeypatch.setattr(served, "IN_PROCESS_REQUESTS", 5)
    timed = served.TimedApp(ceiling.app)
    answers: list[Any] = []

    async def send(message: Any) -> None:
        answers.append(message)

    async def get(path: str) -> str:
        answers.clear()
        scope = {**profile._scope(b""), "method": "GET", "path": path}
        await timed(scope, profile._receiver(b""), send)
        assert answers[0]["status"] == 200
        return str(answers[1]["body"].decode())

    body = delivery_report(1)
    await timed(profile._scope(body), profile._receiver(body), send)
    assert answers[0]["status"] == 200
    calls, app_ns, send_ns = map(int, (await get(served.TIMES_PATH)).split())
    assert calls == 1 and app_ns >= send_ns >= 0
    assert float(await get(served.IN_PROCESS_PATH)) > 0
    assert (await get(served.TIMES_PATH)).split()[0] == "1"  # its own calls are not counted
