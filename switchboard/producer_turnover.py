"""DurableProducer's clients over time: when one can no longer write a partition (a batch of
it failed: spent_a_sequence), a new one is connected in the background and takes over at the
next round trip, and the old one is stopped without waiting for it. Kept apart from the round
trips themselves (switchboard.producer), which only ask for a replacement (_spoil)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from switchboard.clients import KafkaTarget
from switchboard.logs import get_logger
from switchboard.round_trip import Partition, failed_any
from switchboard.tasklog import detached

log = get_logger("switchboard.producer")  # one producer, one logger, whichever module says it


class ClientTurnover:
    """Part of DurableProducer: the state it shares is set in DurableProducer.__init__."""

    kafka: KafkaTarget
    timeout_s: float
    started: bool
    _producer: AIOKafkaProducer | None
    _fresh: AIOKafkaProducer | None
    _replacing: asyncio.Task[None] | None
    _retiring: set[asyncio.Task[None]]
    _stopped: weakref.WeakSet[AIOKafkaProducer]
    _held: dict[AIOKafkaProducer, set[asyncio.Future[Any]]]
    _spoiled: set[Partition]
    _storing_nothing: bool
    _sending: bool

    async def _connect(self) -> AIOKafkaProducer:
        raise NotImplementedError  # DurableProducer's: how its clients are made

    async def _stop_client(self, producer: AIOKafkaProducer) -> None:
        """aiokafka's stop sends what is pending first, retrying for as long as Kafka is away.
        Every caller has had its answer by now (a 503 at the latest after the timeout), so
        records still pending are ones nobody was told were stored: stop without them."""
        stopping = asyncio.ensure_future(producer.stop())
        done, _ = await asyncio.wait([stopping], timeout=self.timeout_s * 2)
        if not done:
            log.warning("stopping without the records Kafka has not taken; their requests "
                        "were not answered 2xx", bootstrap=str(self.kafka))
            sender = getattr(producer, "_sender", None)  # private: aiokafka has no abort
            if sender is not None and sender.sender_task is not None:
                sender.sender_task.cancel()  # its stop() waits on this task, then closes
        try:
            await stopping
        finally:
            self._stopped.add(producer)
            # A batch the stopped client never answered will not land now: its partition is
            # free for the records of a new client (_hold).
            for future in self._held.pop(producer, set()):
                future.cancel()

    def _spoil(self, producer: AIOKafkaProducer, partitions: Iterable[Partition]) -> None:
        """Have a new client take the place of one that can no longer write some partition
        (see spent_a_sequence). It is connected in the background: the old one goes on
        writing the other partitions meanwhile; only `partitions` are refused."""
        if not self.started or producer is not self._producer:
            return
        self._spoiled.update(partitions)
        if self._replacing is None and self._fresh is None:
            self._replacing = asyncio.get_running_loop().create_task(
                self._replace(producer), context=detached())

    def _replacement_over(self) -> None:
        self._spoiled.clear()

    async def _replace(self, spoiled: AIOKafkaProducer) -> None:
        log.warning("replacing the kafka client: a batch it had sent failed, after which it "
                    "would have every later batch of that partition refused as out of order",
                    bootstrap=str(self.kafka))
        try:
            async with asyncio.timeout(self.timeout_s):
                fresh = await self._connect()
        except Exception as exc:  # noqa: BLE001 - keep the old one; tried again on a failure
            log.warning("could not replace the kafka client", bootstrap=str(self.kafka),
                        error=repr(exc))
            self._replacement_over()  # its callers go with the old one: refused, or not
            return
        finally:
            self._replacing = None
        if not self.started or self._producer is not spoiled:  # stopped meanwhile
            self._replacement_over()
            await fresh.stop()
            return
        self._fresh = fresh
        if not self._sending:  # else the flusher takes it once its round trip is sent
            self._take_fresh()

    def _take_fresh(self) -> None:
        """Write with the new client from the next round trip on. What the old one still holds
        keeps its partitions stuck (_hold) until it lands or the old one has stopped, so the
        new one's records do not overtake it (a compacted topic would keep the older value of
        a key); what it holds was answered 503 and may still land. A request already with a
        leader that stalls past the old one's stop and resumes (one broker) can still land
        after the new one's: no client can take back what a broker has received."""
        old, self._producer, self._fresh = self._producer, self._fresh, None
        self._storing_nothing = False  # it connected: Kafka is there, the next group will say
        self._replacement_over()
        if old is not None:
            task = asyncio.get_running_loop().create_task(self._stop_client(old),
                                                          context=detached())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)


def spent_a_sequence(producer: AIOKafkaProducer, futures: list[asyncio.Future[Any]]) -> bool:
    """Whether the client is left unable to write: aiokafka's idempotent producer gives each
    batch its partition's next sequence number when it takes it from its queue and never takes
    one back, so after a batch fails (refused by the broker, or dropped for want of a leader,
    also one never sent: it takes the batch from its queue to drop it) the broker refuses
    every later batch of that partition as out of order (aio-libs/aiokafka#1017).
    A client whose sender task has ended takes nothing any more either."""
    if failed_any(futures):
        return True
    sender = getattr(producer, "_sender", None)  # private: aiokafka does not say
    task = getattr(sender, "sender_task", None)
    return task is not None and task.done()
