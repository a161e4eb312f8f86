"""What /readyz says of Kafka for a worker, and its lag metric (WorkerRuntime's part): judged
from what Kafka answered the member, its fetches and commits, or for a member with no
partition, a question it asks on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers.worker_metrics import LAG
from switchboard.futures import retrieve
from switchboard.logs import get_logger

log = get_logger("consumers.runtime")  # the worker's lines, under the logger they always had

# Kafka answering none of this member's fetches, or none of its commits, for this long makes
# /readyz say so: longer than a broker restart or a leader moving takes, so they do not flap
# it. Looked at every KAFKA_CHECK_S. A member with no partition, which fetches and commits
# nothing, asks Kafka something every third of it instead (_ask_while_idle).
KAFKA_SILENT_AFTER_S = 30.0
KAFKA_CHECK_S = 1.0
# How many partitions such a member asks about: one would make it unready whenever that one's
# leader is down, on a cluster of several brokers.
IDLE_ASKED_PARTITIONS = 3
# How /readyz begins where Kafka answers the commits with a refusal (consumers.commits).
REFUSED = "Kafka refused the commits"


class KafkaState(Enum):
    """The kind of what /readyz says of Kafka, each logged once as it begins (its value) and
    once as it ends: decided where the reason is made, not read back from its words."""

    UNREACHABLE = "kafka is not answering the worker"
    REFUSED = "kafka refuses the worker's commits"
    TOPICS_MISSING = "kafka has none of the worker's topics"
    WATCH_FAILED = "watching kafka failed"  # a bug of ours

    @property
    def ended(self) -> str:
        """The log line once /readyz no longer says it."""
        if self is KafkaState.REFUSED:
            return "kafka takes the worker's commits again"
        if self is KafkaState.TOPICS_MISSING:
            return "kafka has the worker's topics again"
        return "kafka answers the worker again"


@dataclass(frozen=True, slots=True)
class KafkaProblem:
    """What /readyz says of Kafka (`reason`, its words), and its kind."""

    state: KafkaState
    reason: str


class KafkaWatch:
    """WorkerRuntime's watching of Kafka; the state it reads is the runtime's."""

    name: str
    _subscribed: list[str]
    _rebalance_timeout_s: float
    _kafka_problem: KafkaProblem | None  # what /readyz says (WorkerRuntime.problem)
    # monotonic: since when /readyz has said Kafka is away or refusing
    _kafka_silent_since: float
    _rebalancing_since: float | None
    _commits_failing_since: float | None
    _commits_refused_by: str | None
    _fetching: set[TopicPartition]
    _fetching_since: float
    _idle_answered: float
    # Whether Kafka, asked last while this member had no partition, answered that it has none
    # of its topics (deleted, or no longer authorized): not Kafka away.
    _idle_topics_missing = False
    _lagging: set[TopicPartition]
    _fetched: dict[TopicPartition, int]
    _in_flight: dict[TopicPartition, set[int]]

    def rebalancing(self, started: bool) -> None:
        """A rebalance of the group began (partitions revoked) or ended (assigned)."""
        now = time.time()
        if not started:
            self._rebalancing_since = None
            self._fetching_since = now  # the partitions' fetches get their time afresh
        elif self._rebalancing_since is None:
            self._rebalancing_since = now

    async def _watch_kafka(self, consumer: AIOKafkaConsumer) -> None:
        """Keep what /readyz says of Kafka, and the lag, up to date: from the loop, as
        aiokafka's state is not for the probes' thread to read."""
        try:
            while True:
                try:
                    self._say_kafka(self._kafka_unanswered(consumer))
                    self._note_lag(consumer.assignment(), consumer.highwater)
                except Exception as exc:  # noqa: BLE001 - a bug: the probe says it, and the
                    # worker goes on
                    self._say_kafka(KafkaProblem(KafkaState.WATCH_FAILED,
                                                 f"watching Kafka failed: {exc!r}"))
                await asyncio.sleep(KAFKA_CHECK_S)
        finally:
            self._note_lag(set(), consumer.highwater)  # stopped: no partition is ours

    def _say_kafka(self, problem: KafkaProblem | None) -> None:
        """Keep what /readyz says of Kafka, and log when that changes: once as Kafka stops
        answering (or refuses the commits, or the one turns to the other), once as it answers
        again. A member with nothing in flight had no line of
        its own for a broker gone silent (paused, a network partition), only aiokafka's."""
        before = None if self._kafka_problem is None else self._kafka_problem.state
        self._kafka_problem = problem
        if problem is not None and problem.state is not before:
            if before is None:
                self._kafka_silent_since = time.monotonic()
            names = ({"topics": self._subscribed} if problem.state is KafkaState.TOPICS_MISSING
                     else {})  # for the log only: the probe's port may be the internet's
            log.warning(problem.state.value, worker=self.name, reason=problem.reason, **names)
        elif problem is None and before is not None:
            log.info(before.ended, worker=self.name,
                     unready_s=round(time.monotonic() - self._kafka_silent_since, 1))

    def _note_lag(self, assigned: set[TopicPartition],
                  highwater: Callable[[TopicPartition], int | None]) -> None:
        for tp in self._lagging - assigned:  # taken away: its next owner says it
            LAG.remove(self.name, tp.topic, str(tp.partition))
        self._lagging &= assigned
        for tp in assigned:
            end, fetched = highwater(tp), self._fetched.get(tp)
            if end is None or fetched is None:
                continue  # nothing fetched of it since it was assigned
            pending = self._in_flight.get(tp)
            LAG.labels(self.name, tp.topic, str(tp.partition)).set(
                max(0, end - (min(pending) if pending else fetched)))
            self._lagging.add(tp)

    def _kafka_unanswered(self, consumer: AIOKafkaConsumer) -> KafkaProblem | None:
        """Why Kafka seems away, judged from what it answered this member: its fetches, its
        commits, or for a member with no partition (more members than partitions), which
        fetches and commits nothing, the question _ask_while_idle asks; or that it refuses
        the commits (consumers.commits keeps its answer)."""
        now = time.time()
        if self._rebalancing_since is not None:
            # aiokafka fetches nothing new until it ends, which may rightly take until every
            # member has finished what it started; longer, it is stuck for want of Kafka.
            self._fetching = set()
            waited = now - self._rebalancing_since
            if waited > self._rebalance_timeout_s + KAFKA_SILENT_AFTER_S:
                return _unreachable(f"the group's rebalance has not ended for {waited:.0f}s")
            return None
        assigned = consumer.assignment()
        fetching = assigned - consumer.paused()
        if fetching != self._fetching:  # assigned or resumed: their fetches get their time
            self._fetching, self._fetching_since = fetching, now
        if fetching:
            # A fetch is answered every half second while Kafka is there, records or not.
            answered = max(consumer.last_poll_timestamp(tp) or 0 for tp in fetching) / 1000
            silent = now - max(answered, self._fetching_since)
            if silent > KAFKA_SILENT_AFTER_S:
                return _unreachable(f"no fetch answered for {silent:.0f}s")
        elif not assigned:  # no partition: what _ask_while_idle asks tells
            silent = now - max(self._idle_answered, self._fetching_since)
            if silent > KAFKA_SILENT_AFTER_S and self._idle_topics_missing:
                return KafkaProblem(KafkaState.TOPICS_MISSING,
                                    "Kafka topics missing (this member has no partition)")
            if silent > KAFKA_SILENT_AFTER_S:
                return _unreachable(f"no answer for {silent:.0f}s (this member has no "
                                    "partition)")
        # Partitions all paused (every slot busy) are not fetched: their commits still tell.
        failing_since = self._commits_failing_since
        if failing_since is not None and now - failing_since > KAFKA_SILENT_AFTER_S:
            if (refused_by := self._commits_refused_by) is not None:
                # Kafka answered: an ACL, or a commit it will not take, to fix in Kafka. Its
                # error's class name only, as the probe's port may be the internet's.
                return KafkaProblem(KafkaState.REFUSED,
                                    f"{REFUSED}: {refused_by} (for {now - failing_since:.0f}s)")
            return _unreachable(f"commits failing for {now - failing_since:.0f}s")
        return None

    async def _ask_while_idle(self, consumer: AIOKafkaConsumer) -> None:
        """While this member has no partition, ask Kafka for the end of a few partitions of its
        topics every third of KAFKA_SILENT_AFTER_S (small requests to their leaders): it would
        otherwise stay ready through an outage, having nothing to fetch or commit that could
        fail. Any of them answering will do: one broker down (its partitions' leaders not
        moved yet) is not Kafka away."""
        while True:
            await asyncio.sleep(KAFKA_SILENT_AFTER_S / 3)
            if consumer.assignment() or self._rebalancing_since is not None:
                continue
            # Partitions in a row of a topic have their leaders on different brokers, as Kafka
            # places them.
            known = [TopicPartition(topic, partition) for topic in self._subscribed
                     for partition in sorted(consumer.partitions_for_topic(topic) or ())]
            if not known:  # no metadata of its topics: never answered, or they are gone
                listed = await self._topics_listed(consumer)
                self._idle_topics_missing = listed is False
                if listed:  # there again: aiokafka's metadata of them follows
                    self._idle_answered = time.time()
                continue
            if self._idle_topics_missing:  # created again: Kafka's metadata, an answer
                self._idle_topics_missing, self._idle_answered = False, time.time()
            if await self._any_answers(consumer, known[:IDLE_ASKED_PARTITIONS]):
                self._idle_answered = time.time()

    async def _topics_listed(self, consumer: AIOKafkaConsumer) -> bool | None:
        """Whether Kafka lists any of this member's topics (False: all deleted under it, or no
        longer authorized); None where it does not answer (Kafka away)."""
        try:
            async with asyncio.timeout(KAFKA_SILENT_AFTER_S / 3):
                listed = await consumer.topics()
        except (KafkaError, TimeoutError):
            return None
        except Exception as exc:  # noqa: BLE001 - not Kafka's answer (a bug): said, and
            # asked again
            log.warning("asking Kafka while idle failed", worker=self.name, error=repr(exc))
            return None
        return bool(set(self._subscribed) & set(listed))

    async def _any_answers(self, consumer: AIOKafkaConsumer,
                           partitions: list[TopicPartition]) -> bool:
        """Whether Kafka says the end of any of `partitions`, each asked on its own (aiokafka
        waits for every leader of one question) and in parallel."""
        asking = [asyncio.ensure_future(consumer.end_offsets([tp])) for tp in partitions]
        try:
            # aiokafka asks until its request timeout (over two minutes here): shorter.
            async with asyncio.timeout(KAFKA_SILENT_AFTER_S / 3):
                for answer in asyncio.as_completed(asking):
                    try:
                        await answer
                    except (KafkaError, TimeoutError):
                        continue  # unanswered: /readyz says so once it lasts for all
                    except Exception as exc:  # noqa: BLE001 - not Kafka's answer (a bug):
                        # said, and asked again
                        log.warning("asking Kafka while idle failed", worker=self.name,
                                    error=repr(exc))
                        continue
                    return True
        except TimeoutError:
            pass
        finally:
            for question in asking:
                if not question.done():
                    question.cancel()
                question.add_done_callback(retrieve)
        return False


def _unreachable(why: str) -> KafkaProblem:
    return KafkaProblem(KafkaState.UNREACHABLE, f"Kafka unreachable: {why}")
