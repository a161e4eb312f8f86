"""The counters an operator alerts on are scraped at 0 from a worker's start, not only after
their first increment (which rate() and increase() then missed, the series beginning at 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from prometheus_client import REGISTRY

from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


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
