"""Kafka client helpers shared by ingest and the workers."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from switchboard.logs import get_logger

log = get_logger(__name__)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer, also while the broker is away.

    aiokafka's stop then cancels its own fetch task and lets that CancelledError out: it is
    not a cancellation of ours, and a worker stopping on SIGTERM should not exit with a
    traceback because of it. A cancellation of the calling task still goes through.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("kafka consumer stopped while the broker was unreachable")
