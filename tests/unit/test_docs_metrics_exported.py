"""Every metric the README and docs/ name is one Switchboard exports: an alert or a dashboard
written from the docs would otherwise watch a series that never comes (the other direction,
each exported metric named in the README, is test_readme_metrics)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_readme_metrics import _exported

REPO = Path(__file__).parents[2]
# A name as the docs write one: whole (`switchboard_worker_` before `…` names the family).
NAMED = re.compile(r"\bswitchboard_[a-z_]*[a-z]\b(?!…)")
# Histograms are scraped as these series of the name the code gives them.
SERIES_SUFFIXES = ("_bucket", "_count", "_sum")


def _named_in_docs() -> dict[str, set[str]]:
    """Metric names by the document naming them."""
    documents = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    named: dict[str, set[str]] = {}
    for path in documents:
        for name in NAMED.findall(path.read_text(encoding="utf-8")):
            named.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return named


def test_each_metric_the_docs_name_is_exported() -> None:
    exported = _exported()
    named = _named_in_docs()
    assert "switchboard_ingest_requests_total" in named  # the pattern finds them
    missing = {name: sorted(where) for name, where in named.items()
               if name not in exported
               and not any(name.endswith(suffix) and name.removesuffix(suffix) in exported
                           for suffix in SERIES_SUFFIXES)}
    assert missing == {}
