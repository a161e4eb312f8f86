"""The Prometheus metrics of the worker runtime (consumers.runtime), per worker."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# As ingest.metrics, for the same reason: no `<name>_created` series in a worker's scrape.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Handlings, not distinct records: one handled again by the partition's next owner (its commit
# on the way out refused or unanswered, its worker crashed: at-least-once) counts again, as it
# is work done again. Counting records once would take the group's commits, not this process's.
HANDLED = Counter("switchboard_worker_records_total",
                  "Records handled by workers (again when delivered again), by outcome: ok, "
                  "dead_letter once Kafka stored the letter; retry counts failed attempts "
                  "tried again", ["worker", "outcome"])
_HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
# Successes only (one per record handled ok), as the README says: "per record" read as if a
# record's failed attempts, or its dead letter, were in it too.
HANDLER_SECONDS = Histogram("switchboard_worker_handler_seconds",
                            "Handler time of each attempt that succeeded (failed ones: "
                            "switchboard_worker_handler_failure_seconds)",
                            ["worker"], buckets=_HANDLER_BUCKETS)
# Apart from HANDLER_SECONDS, whose labels dashboards may rely on: a provider timing out every
# call would otherwise leave no trace of the time spent on it. `cause`: error, timeout (the
# handler's time limit), kafka_away (a publish Kafka did not take), poison.
HANDLER_FAILURE_SECONDS = Histogram(
    "switchboard_worker_handler_failure_seconds", "Handler time per failed attempt",
    ["worker", "cause"], buckets=_HANDLER_BUCKETS)
IN_FLIGHT = Gauge("switchboard_worker_records_in_flight",
                  "Records fetched and not finished (handled, waiting for a slot, their key's "
                  "turn or a retry)", ["worker"])
PARTITIONS = Gauge("switchboard_worker_partitions_assigned",
                   "Partitions assigned to this member (0: idle, more members than partitions)",
                   ["worker"])
# From what the last fetch of the partition said of its end (aiokafka's highwater, no request
# of its own); a partition nothing was fetched of since it was assigned has none yet.
LAG = Gauge("switchboard_worker_lag_records",
            "Records of a partition not finished yet: from the oldest in flight (or the next "
            "to fetch) to the partition's end", ["worker", "topic", "partition"])
REBALANCES = Counter("switchboard_worker_rebalances_total",
                     "Assignments received, and partitions taken away, at group rebalances",
                     ["worker", "change"])
# A group's commit, or a running worker's position, below its partition's first record: Kafka
# deleted those records (retention: the worker stopped, or behind, longer than the topic's
# retention.ms; kafka-delete-records) before they were handled (consumers.positions, .skips).
# Counted by offset: what was deleted cannot be looked at, so a transaction marker among them
# (a transactional producer of the user's writing the topic; Switchboard's are not) counts too.
LOST = Counter("switchboard_worker_records_lost_total",
               "Records deleted by Kafka (retention) before the worker's group handled them "
               "(by offset: transaction markers among them count too)", ["worker"])
# A running worker's fetch skipped offsets, and Kafka, asked where the partition's log begins,
# did not answer: records it deleted before they were handled, or offsets that hold none
# (transaction markers, compaction) (consumers.skips).
MAYBE_LOST = Counter("switchboard_worker_records_maybe_lost_total",
                     "Offsets a worker's fetches skipped that Kafka could not be asked about: "
                     "records it deleted (retention) before they were handled, or none",
                     ["worker"])

# A labelled counter has no series until its first increment: an alert on
# increase(...records_lost_total[1h]) > 0 had nothing to look at, and rate() and increase()
# missed that first increment (the series began at 1). Created at 0 when a worker starts: every
# outcome (three) and change (two), the losses.
_OUTCOMES = ("ok", "retry", "dead_letter")  # consumers.attempts
_CHANGES = ("assigned", "revoked")  # consumers.assignment


def initialize(worker: str) -> None:
    """The counters an operator alerts on, at 0 for `worker` from its start."""
    for outcome in _OUTCOMES:
        HANDLED.labels(worker, outcome)
    for change in _CHANGES:
        REBALANCES.labels(worker, change)
    LOST.labels(worker)
    MAYBE_LOST.labels(worker)


# Every metric is a module's, in the one registry, and a worker process imports every worker's
# modules: the sender exported the bots' families (switchboard_bot_rules_reload_failures_total 0)
# and the bots the sender's. A `switchboard worker` process exports the runtime's and its own;
# `run`, every worker and ingest in one process, all of them. By name, so a family added to a
# worker's modules under its prefix is exported by that worker with no change here.
RUNTIME_FAMILIES = "switchboard_worker_"
OWN_FAMILIES = {"sender": "switchboard_sender_"}
BOT_FAMILIES = "switchboard_bot_"  # keywords, autoreply and `worker bot`
_exported: list[tuple[str, ...]] = []  # set once, by `switchboard worker` before it serves


def export_only_for(worker: str) -> None:
    """This process runs `worker` alone (`switchboard worker NAME`): its metrics endpoint
    leaves out the other workers' families. Python's and the process's stay."""
    _exported[:] = [(RUNTIME_FAMILIES, OWN_FAMILIES.get(worker, BOT_FAMILIES))]


class _Exported(Collector):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    def collect(self) -> Iterable[Metric]:
        for family in REGISTRY.collect():
            if not family.name.startswith("switchboard_") or family.name.startswith(
                    self.prefixes):
                yield family


def exported_registry() -> CollectorRegistry:
    """What a worker's /metrics exports: the whole registry, or the families export_only_for
    kept (read at each scrape; prometheus-client's `name[]` filter still applies)."""
    if not _exported:
        return REGISTRY
    registry = CollectorRegistry(support_collectors_without_names=True)
    registry.register(_Exported(_exported[0]))
    return registry
