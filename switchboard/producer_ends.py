"""How DurableProducer's round trips end: each caller's answer, the log lines saying when Kafka
stops and starts taking records, and the batches a round trip leaves still out (a partition
Kafka keeps without an answer), whose partitions stay `stuck` until Kafka answers for them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from switchboard.producer_turnover import ClientTurnover, log, spent_a_sequence
from switchboard.round_trip import (
    Group,
    Partition,
    PublishError,
    Sent,
    failed_any,
    refused_partitions,
    stored_any,
    unstored_partitions,
)
from switchboard.tasklog import detached

# A round trip's outcome: its failure, the partitions that failed when only they did, and
# whether its client can no longer write one of them.
Outcome = tuple[PublishError | None, dict[Partition, PublishError] | None, bool]


class RoundTripEnds(ClientTurnover):
    """Part of DurableProducer: the state it shares is set in DurableProducer.__init__."""

    _buffered: int
    _failing: bool
    _failed: set[Partition]
    _stored_at: float
    _stuck: dict[Partition, int]
    _holding: set[asyncio.Task[None]]

    def _note_outcome(self, group: Group, failure: PublishError | None,
                      refused: dict[Partition, PublishError] | None) -> None:
        """Say when Kafka stops and starts taking records again: the client's own logs
        report every retry but never the recovery. Taking again means for a partition that
        had failed: while one is refused or waits for a leader, the others' round trips
        succeed, and the two lines alternated at each of its failures."""
        # Kafka refusing a record for what it is (too large) is Kafka there, taking the rest.
        lasting = failure is not None and (failure.lasting or any(
            error.lasting for error in (refused or {}).values()))
        if group.sent_at is not None:  # one that handed Kafka nothing says nothing of it
            # Nor does one ending after later ones were stored (left to end by itself, _hold):
            # its partitions were the trouble, and requests beside them would fail at once.
            self._storing_nothing = (failure is not None and not group.stored_any
                                     and not lasting and self._stored_at <= group.sent_at)
        if failure is not None:
            self._not_taking(refused.keys() if refused else group.batches.keys(), failure)
        elif self._failing and not self._failed.isdisjoint(group.batches):
            log.info("kafka is taking records again", bootstrap=str(self.kafka))
            self._failing = False
            self._failed.clear()

    def _note_unanswered(self, group: Group, failure: PublishError) -> None:
        """Callers answered 503 at their timeout are Kafka not taking records, however their
        round trip ends: one that lands later (a broker back within twice the timeout, which
        aiokafka retries for) ends as stored, and the outage went unsaid. Said now, as they
        get their 503; the round trip's end says when Kafka takes them again."""
        unanswered = {partition for waiter, written in group.waiters if not waiter.done()
                      for partition in written}
        if unanswered:
            self._not_taking(unanswered, failure)

    def _not_taking(self, partitions: Iterable[Partition], failure: PublishError) -> None:
        """Said once per outage; these partitions taking records again ends it."""
        if not self._failing:
            log.warning("kafka is not taking records", bootstrap=str(self.kafka),
                        reason=str(failure))
        self._failing = True
        self._failed.update(partitions)

    @staticmethod
    def _settle(group: Group, sent: Sent, waiting: set[Partition],
                withheld: dict[Partition, PublishError]) -> None:
        """Answer the callers whose partitions' batches have all ended (not `waiting`)."""
        group.settle({p for p, _ in sent} - waiting | withheld.keys(),
                     refused_partitions(sent) | withheld)

    def _kafka_taking(self, producer: AIOKafkaProducer, futures: list[asyncio.Future[Any]],
                      waiting: set[Partition], now: float) -> bool:
        """Whether batches still out are their partitions' trouble, not Kafka being away:
        Kafka stored some of this round trip, or of one lately (a webhook whose records all
        went to such partitions), or the metadata shows one of theirs without a leader."""
        return stored_any(futures) or _leaderless(producer, waiting) or (
            not self._storing_nothing and now - self._stored_at < self.timeout_s)

    def _conclude(self, group: Group, producer: AIOKafkaProducer | None,
                  outcome: Outcome) -> None:
        failure, refused, spent = outcome
        self._note_outcome(group, failure, refused)
        group.finish(failure, refused)
        self._buffered -= group.size
        if spent and producer is not None:
            self._spoil(producer, refused or {})

    def _hold(self, producer: AIOKafkaProducer, sent: Sent,
              withheld: dict[Partition, PublishError], group: Group | None,
              deadline: float) -> None:
        """Keep the partitions of batches still out `stuck` until Kafka answers for them, or
        their client stops: publish refuses their records meanwhile, and no client (this one,
        or one taking its place) sends a batch of theirs that could overtake them.

        With a group (left by _send while they are out), its callers still waiting are
        answered as their batches end, by the deadline at the latest."""
        out = [(partition, future) for partition, future in sent if not future.done()]
        if not out and group is None:
            return
        for partition, _ in out:
            self._stuck[partition] = self._stuck.get(partition, 0) + 1
        held = self._held.setdefault(producer, set())
        held.update(future for _, future in out)
        if producer in self._stopped:  # stopped meanwhile: what it holds will not land now
            for _, future in out:
                future.cancel()
        task = asyncio.get_running_loop().create_task(
            self._release(producer, sent, out, withheld, group, deadline), context=detached())
        self._holding.add(task)
        task.add_done_callback(self._holding.discard)

    async def _release(self, producer: AIOKafkaProducer, sent: Sent, out: Sent,
                       withheld: dict[Partition, PublishError], group: Group | None,
                       deadline: float) -> None:
        futures = [future for _, future in out]
        try:
            if group is not None:
                if futures:
                    loop = asyncio.get_running_loop()
                    await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
                unstored = unstored_partitions(sent, self.timeout_s) | withheld
                group.stored_any = stored_any([future for _, future in sent])
                self._conclude(group, producer, (
                    next(iter(unstored.values()), None), unstored or None,
                    spent_a_sequence(producer, [future for _, future in sent])))
            if futures:
                await asyncio.wait(futures)
        finally:
            for partition, _ in out:
                if (left := self._stuck[partition] - 1) > 0:
                    self._stuck[partition] = left
                else:
                    del self._stuck[partition]
            if (held := self._held.get(producer)) is not None:
                held.difference_update(futures)
                if not held:
                    del self._held[producer]
        if failed_any(futures):  # one that failed late spent its sequence number too
            self._spoil(producer, refused_partitions(out))


def _leaderless(producer: AIOKafkaProducer, partitions: set[Partition]) -> bool:
    """Whether the client's metadata says one of these partitions has no leader: its batch
    waits for that partition, not for Kafka (a round trip of only its records stored nothing
    to tell). A broker that stopped answering is still the leader there, and Kafka away is
    told apart from it by the round trip that stores nothing (see publish)."""
    cluster = producer.client.cluster
    return any(cluster.leader_for_partition(TopicPartition(*partition)) in (None, -1)
               for partition in partitions)
