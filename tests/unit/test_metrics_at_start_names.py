"""The outcomes created at 0 when a worker starts are the names the code counts: the tuples
are written by hand, and a typo in one made a zero series that never moves while the real one
still appeared only at its first count (what the zero series are for). Read from the source,
as a test that runs every path would be the whole suite."""

from __future__ import annotations

import ast
from pathlib import Path

from consumers import sender_metrics, worker_metrics

CONSUMERS = Path(__file__).resolve().parents[2] / "consumers"


def _strings(node: ast.expr, where: str) -> set[str]:
    """The values a label argument can take: a literal, or either side of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body, where) | _strings(node.orelse, where)
    raise AssertionError(f"{where}: a label not written as a literal, {ast.unparse(node)}: "
                         "name its values here, or create its series at 0 from them")


def counted(counter: str, position: int) -> set[str]:
    """Every value `counter.labels(...)` is given at `position` in consumers/, but where the
    zero series themselves are made (a loop over the tuple under test)."""
    found: set[str] = set()
    for path in CONSUMERS.rglob("*.py"):
        if path.name in ("worker_metrics.py", "sender_metrics.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "labels" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == counter):
                where = f"{path.relative_to(CONSUMERS.parent)}:{node.lineno}"
                assert len(node.args) > position, f"{where}: labels by keyword"
                found |= _strings(node.args[position], where)
    return found


def test_every_record_outcome_and_rebalance_change_counted_is_the_one_made_at_zero() -> None:
    assert set(worker_metrics._OUTCOMES) == counted("HANDLED", 1)
    assert set(worker_metrics._CHANGES) == counted("REBALANCES", 1)


def test_the_senders_outcomes_at_zero_are_outcomes_it_counts_and_the_rest_are_chosen() -> None:
    outcomes = counted("SENDS", 2)
    assert set(sender_metrics._ALERTED) | {"unknown_account"} <= outcomes
    # A new outcome is alerted on (then at 0 from the start) or not: a choice, said here and in
    # docs/outbound.md (Metrics), not left to whoever adds it.
    assert outcomes - set(sender_metrics._ALERTED) == {
        "unknown_account", "opted_out", "bad_outbound_config", "invalid_command",
        "already_handled"}
