"""`switchboard tail`: watch the event topics from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys

from switchboard.cli.startup import NoAnswer, cannot_reach_kafka, named_cluster, reach_kafka
from switchboard.settings import Settings


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Print records of the event topics as they arrive (JSON lines), until Ctrl-C (exit 130)
    or --limit (exit 0)."""
    from switchboard.tail import CannotRead, UnknownTopic, tail

    bootstrap = named_cluster(settings)
    if bootstrap is None:
        return 2
    from aiokafka.errors import KafkaConnectionError, KafkaError

    kafka = settings.kafka_connection()

    async def watch() -> None:
        await reach_kafka(kafka, "tail")
        await tail(kafka, args.topic, from_beginning=args.all, limit=args.limit)

    try:
        asyncio.run(watch())
    except KeyboardInterrupt:
        # 130, as replay and send, and as a shell reports a tool Ctrl-C killed: a script
        # can tell an interrupted tail from one that printed its --limit.
        return 130
    except (KafkaConnectionError, NoAnswer) as exc:
        print(cannot_reach_kafka(bootstrap, exc), file=sys.stderr)
        return 1
    except UnknownTopic as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CannotRead as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:  # refused for good: no permission to read the topic, say
        print(f"error: Kafka: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    return 0
