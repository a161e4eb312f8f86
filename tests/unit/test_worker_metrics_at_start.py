"""The counters an operator alerts on are scraped at 0 from a worker's start, not only after
their first increment (which rate() and increase() then missed, the series beginning at 1)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers import workers
from consumers.bots.handler import RulesSource
from consumers.runtime import WorkerRuntime
from switchboard.accounts import Accounts, parse_accounts
from switchboard.settings import Settings
from tests.fakes import CaughtUpTable, KeepingProducer


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def _accounts(sending: str, receiving: str) -> Accounts:
    auth = {"scheme": "basic", "username": "ib", "secrets": ["zero-series-webhook"]}
    return parse_accounts({"accounts": {
        sending: {"provider": "infobip", "auth": auth,
                  "outbound": {"base_url": "http://127.0.0.1:9/infobip",
                               "api_key": "zero-series-api-key", "sender": "InfoSMS"}},
        receiving: {"provider": "infobip", "auth": auth}}})


def _settings(**given: Any) -> Settings:
    return Settings(kafka_bootstrap_servers="127.0.0.1:1", create_topics=False,
                    metrics_port=None, **given)


@contextlib.contextmanager
def _sighup_kept() -> Iterator[None]:
    """The bots take SIGHUP for reloading their rules: the test session's is given back."""
    before = signal.getsignal(signal.SIGHUP)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_new_workers_record_outcomes_rebalances_and_losses_are_at_zero() -> None:
    name = f"zero-{uuid.uuid4().hex[:8]}"
    WorkerRuntime(name=name, kafka="unused:9092", topics=["t"], handler=None,  # type: ignore[arg-type]
                  producer=KeepingProducer())  # type: ignore[arg-type]
    for outcome in ("ok", "retry", "dead_letter"):
        assert _value("switchboard_worker_records_total", worker=name, outcome=outcome) == 0
    for change in ("assigned", "revoked"):
        assert _value("switchboard_worker_rebalances_total", worker=name, change=change) == 0
    assert _value("switchboard_worker_records_lost_total", worker=name) == 0
    assert _value("switchboard_worker_records_maybe_lost_total", worker=name) == 0


async def test_the_senders_alerted_outcomes_are_at_zero_for_each_account_it_sends_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "CompactedTable", CaughtUpTable)
    sending, receiving = f"send-{uuid.uuid4().hex[:8]}", f"recv-{uuid.uuid4().hex[:8]}"
    async with workers.sender_worker(_settings(), _accounts(sending, receiving)):
        for outcome in ("accepted", "retryable", "permanent", "error", "outcome_unknown",
                        "held", "not_called"):
            assert _value("switchboard_sender_sends_total", provider="infobip",
                          account=sending, outcome=outcome) == 0
        # Not a contact's choice: bounded to what means trouble (or its ratio's denominator).
        assert _value("switchboard_sender_sends_total", provider="infobip", account=sending,
                      outcome="opted_out") is None
        # An account that only receives webhooks is never sent for.
        assert _value("switchboard_sender_sends_total", provider="infobip", account=receiving,
                      outcome="accepted") is None
        assert _value("switchboard_sender_sends_total", provider="", account="",
                      outcome="unknown_account") is not None
        assert _value("switchboard_worker_records_lost_total", worker="sender") is not None


_BOT_COUNTERS = ("switchboard_bot_opted_out_messages_total",
                 "switchboard_bot_replies_limited_total",
                 "switchboard_bot_compliance_replies_limited_total")


def _bot_counts(worker: str, account: str) -> list[float | None]:
    return [_value(name, worker=worker, account=account) for name in _BOT_COUNTERS]


@pytest.mark.parametrize("worker", ["keywords", "autoreply"])
async def test_a_bots_limits_and_silenced_messages_are_at_zero_for_every_account(
        worker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "CompactedTable", CaughtUpTable)
    named, filed = f"named-{uuid.uuid4().hex[:8]}", f"filed-{uuid.uuid4().hex[:8]}"
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[accounts."{named}"]\nhelp_text = "Acme"\n\n[accounts."*"]\n')
    settings = _settings(rules_file=rules)
    with _sighup_kept():
        async with workers.WORKERS[worker](settings, _accounts(filed, f"x-{filed}")):
            assert _bot_counts(worker, named) == [0, 0, 0]  # named by the rules
            assert _bot_counts(worker, filed) == [0, 0, 0]  # answered by "*" (or by default)
            # Counted by the message's account: "*" is never one.
            assert _bot_counts(worker, "*") == [None, None, None]
            assert _value("switchboard_worker_records_total", worker=worker,
                          outcome="dead_letter") is not None


def test_accounts_a_rules_reload_names_begin_at_zero_and_dropped_ones_stay(
        tmp_path: Path) -> None:
    from consumers.bots.handler import BotHandler
    from consumers.bots.optouts import OptOutList

    worker = f"bot-{uuid.uuid4().hex[:8]}"
    first, added = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "rules.toml"
    path.write_text(f'[accounts."{first}"]\nhelp_text = "v1"\n')
    source = RulesSource(path, check_every_s=0)
    BotHandler(worker, source, OptOutList(CaughtUpTable()), None)  # type: ignore[arg-type]
    assert _bot_counts(worker, added) == [None, None, None]
    path.write_text(f'[accounts."{added}"]\nhelp_text = "v2"\n')
    source.request_reload()  # as SIGHUP does
    source.maybe_reload()
    assert added in source.current.accounts
    assert _bot_counts(worker, added) == [0, 0, 0]
    assert _bot_counts(worker, first) == [0, 0, 0]


# Run in a child: prometheus-client chooses its file-backed values at import.
_MULTIPROCESS = """
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer
WorkerRuntime(name="mp-zero", kafka="unused:9092", topics=["t"], handler=None,
              producer=KeepingProducer())
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def test_the_zero_series_are_there_with_prometheus_multiproc_dir(tmp_path: Path) -> None:
    # Each process writes its counts to files there, which a scrape sums (`serve --workers`):
    # a series created and never incremented must be in them too.
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
                        "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", _MULTIPROCESS], env=env, text=True,
                            capture_output=True, timeout=60, check=True)
    assert 'switchboard_worker_records_lost_total{worker="mp-zero"} 0.0' in result.stdout
    assert ('switchboard_worker_records_total{outcome="dead_letter",worker="mp-zero"} 0.0'
            in result.stdout)
