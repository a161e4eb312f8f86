"""`switchboard send`: one outbound message from a terminal, through the sender like any other."""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime

import orjson

from switchboard.addresses import is_national_number
from switchboard.cli.startup import (
    NoAnswer,
    accounts_or_exit,
    cannot_reach_kafka,
    named_cluster,
    reach_kafka,
    run_loop,
)
from switchboard.settings import Settings, validation_problems


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when published (with --wait: accepted by the provider), 1 when Kafka failed or
    the send failed, 2 for bad arguments, 3 when no result came within --wait."""
    from aiokafka.errors import KafkaConnectionError, KafkaError
    from pydantic import ValidationError

    from switchboard.commands import OutboundCommand, OutboundResult
    from switchboard.outbox import KafkaSilent, NoTopic, send_command
    from switchboard.producer import PublishError

    bootstrap = named_cluster(settings)
    if bootstrap is None:
        return 2
    accounts = accounts_or_exit(settings, demo=True)  # `run` serves the demo accounts too
    if accounts is None:
        return 2
    account = accounts.by_name(args.account)
    if account is None:
        known = ", ".join(sorted(a.name for a in accounts))
        print(f"error: no account named {args.account!r}; known: {known}", file=sys.stderr)
        return 2
    if not account.outbound:  # the sender would fail it (bad_outbound_config): said only to --wait
        print(f"error: account {account.name!r} has no outbound settings "
              f"([accounts.{account.name}.outbound], docs/outbound.md): the sender cannot send "
              "for it; nothing published", file=sys.stderr)
        return 2
    try:
        command = OutboundCommand(
            id=args.id or str(uuid.uuid4()), account=account.name, to=args.to,
            channel=args.channel, text=args.text, created_at=datetime.now(UTC),
            media=[{"url": url} for url in args.media])
    except ValidationError as exc:
        print(f"error: {validation_problems(exc, 'command')}", file=sys.stderr)
        return 2
    from consumers.outbound.base import account_channel

    channel = args.channel or account_channel(account)
    if national := _national_number(command.addressed(channel).to, channel):
        print(f"error: {national}; nothing published", file=sys.stderr)
        return 2
    kafka = settings.kafka_connection()
    sending = False

    async def send() -> OutboundResult | None:
        nonlocal sending
        await reach_kafka(kafka, "send")
        sending = True
        return await send_command(kafka, command, account.provider, wait_s=args.wait)

    try:
        result = run_loop(send())
    except KeyboardInterrupt:
        said = "may have been" if sending else "was not"
        print(f"interrupted: command {command.id} {said} published", file=sys.stderr)
        return 130
    except (KafkaConnectionError, NoAnswer) as exc:  # before the command was handed over
        print(cannot_reach_kafka(bootstrap, exc), file=sys.stderr)
        return 1
    except KafkaSilent as exc:  # published; the wait for its result heard nothing
        print(f"error: command {command.id} published, but no result within {args.wait:g} s: "
              f"Kafka is not answering (none of the fetches of results answered for the last "
              f"{exc.silent_s:.0f} s: a broker paused or out of reach); look for its result "
              "once it answers (`switchboard tail --topic switchboard.outbound-results.v1 --all`)",
              file=sys.stderr)
        return 3
    except NoTopic as exc:  # found before publishing: nothing was sent
        print(f"error: {exc}; nothing published", file=sys.stderr)
        return 1
    except (KafkaError, PublishError) as exc:
        print(f"error: Kafka: {exc or type(exc).__name__} (command {command.id})",
              file=sys.stderr)
        return 1
    if not args.wait:
        sys.stdout.buffer.write(orjson.dumps({"command_id": command.id, "published": True})
                                + b"\n")
        return 0
    if result is None:
        print(f"error: command {command.id} published, but no result within {args.wait:g} s: "
              "is a sender running (`switchboard worker sender`; `run` starts one)?",
              file=sys.stderr)
        return 3
    sys.stdout.buffer.write(result.to_json() + b"\n")
    return 0 if result.status == "accepted" else 1


def _national_number(to: str, channel: str) -> str | None:
    """Why `to` (as the sender spells it) cannot go out on `channel`, or None. Refused, not
    guessed at: 0791234567 is another contact in each country; the sender would pass it on
    as given. The number is not repeated (a contact's number stays out of what may end in a
    log)."""
    if not is_national_number(to, channel):  # user ids (Telegram, Messenger): any form
        return None
    return (f"`to` is a national number (a leading 0), but {channel} wants it international "
            "(E.164): + and the country code, e.g. +447911123456 for 07911 123456 in the UK")
