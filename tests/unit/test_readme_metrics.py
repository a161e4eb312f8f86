"""Every metric Switchboard exports is named in the README, where an operator looks for what
to scrape and alert on (the bots' counters were not)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).parents[2]
METRIC = re.compile(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"(switchboard_\w+)"')


def _exported() -> set[str]:
    names: set[str] = set()
    for package in ("ingest", "consumers", "switchboard", "simulator"):
        for path in (REPO / package).rglob("*.py"):
            names.update(METRIC.findall(path.read_text(encoding="utf-8")))
    return names


def test_each_metric_is_named_in_the_readme() -> None:
    exported = _exported()
    assert "switchboard_bot_replies_total" in exported  # the pattern finds them
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert sorted(name for name in exported if f"`{name}" not in readme) == []
