"""`switchboard send`: one outbound message from a terminal, through the sender like any other."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from switchboard.accounts import Account
from switchboard.addresses import is_national_number
from switchboard.cli.startup import (
    NoAnswer,
    accounts_or_exit,
    cannot_reach_kafka,
    named_cluster,
    reach_kafka,
    run_loop,
)
from switchboard.clients import KafkaConnection, admin_client
from switchboard.settings import Settings
from switchboard.validation import validation_problems

# The sender's consumer group as the code names it (consumers.runtime: switchboard-<worker>).
SENDER_GROUP = "switchboard-sender"
# How long `--wait` asks Kafka about the sender's group once no result came: a hint, not the
# job, so it is not worth a second wait as long as the first.
GROUP_ASK_TIMEOUT_S = 5.0


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
        print(f"error: no account named {args.account!r}; {_can_send(accounts)}",
              file=sys.stderr)
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
    sending = published = False
    senders: int | None = None

    def stored() -> None:
        nonlocal published
        published = True

    async def send() -> OutboundResult | None:
        nonlocal sending, senders
        await reach_kafka(kafka, "send")
        sending = True
        result = await send_command(kafka, command, account.provider, wait_s=args.wait,
                                    on_published=stored)
        if result is None and args.wait:
            senders = await senders_running(kafka)
        return result

    try:
        result = run_loop(send())
    except KeyboardInterrupt:
        if published:  # Kafka acknowledged it: the sender sends it, waited for or not
            print(f"interrupted: command {command.id} was published; its result was not "
                  f"waited for ({_RESULTS_TAIL})", file=sys.stderr)
        else:
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
              f"once it answers ({_RESULTS_TAIL})", file=sys.stderr)
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
              f"{_why_no_result(senders, kafka.group(SENDER_GROUP), given_id=bool(args.id))}",
              file=sys.stderr)
        return 3
    if result.completed_at < command.created_at:
        # A reused --id: the sender sends an id once, and publishes that first result again
        # (within the hour). Printed alone, it read as this command's, sent.
        handled = f"{result.completed_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
        print(f"note: command id {command.id} was handled before ({handled} UTC): this is that "
              "result; this command was not sent (an id is sent at most once: give a new --id)",
              file=sys.stderr)
    sys.stdout.buffer.write(result.to_json() + b"\n")
    return 0 if result.status == "accepted" else 1


def _can_send(accounts: Iterable[Account]) -> str:
    """The accounts `send` takes: those with an outbound table. Every account was listed, the
    webhook-only ones too, which it then refused one at a time."""
    if names := sorted(a.name for a in accounts if a.outbound):
        return f"the accounts that can send (with an outbound table): {', '.join(names)}"
    return ("no account can send: none has an outbound table ([accounts.<name>.outbound], "
            "docs/outbound.md)")


def _national_number(to: str, channel: str) -> str | None:
    """Why `to` (as the sender spells it) cannot go out on `channel`, or None. Refused, not
    guessed at: 0791234567 is another contact in each country; the sender would pass it on
    as given. The number is not repeated (a contact's number stays out of what may end in a
    log)."""
    if not is_national_number(to, channel):  # user ids (Telegram, Messenger): any form
        return None
    return (f"`to` is a national number (a leading 0), but {channel} wants it international "
            "(E.164): + and the country code, e.g. +447911123456 for 07911 123456 in the UK")


_RESULTS_TAIL = "`switchboard tail --topic switchboard.outbound-results.v1 --all` shows it"


def _why_no_result(senders: int | None, group: str, *, given_id: bool) -> str:
    """What the wait's end means: "is a sender running?" was said to one whose sender was
    waiting on a slow provider, as to one with no sender at all."""
    if senders is None:  # Kafka would not say: both stay possible
        return ("is a sender running (`switchboard worker sender`; `run` starts one)? It sends "
                f"the command once one runs; {_RESULTS_TAIL}")
    if senders == 0:
        return (f"no sender is running (its consumer group {group} has no member; a sender "
                "joins it once it has read its ledger): start `switchboard worker sender` (`run` "
                f"starts one), which sends the command then; {_RESULTS_TAIL}")
    # An id handled over an hour ago is not sent again, and its result not published again.
    reused = (", unless its --id was handled over an hour ago (then it is not sent again and "
              "no result comes)") if given_id else ""
    return (f"a sender is running ({senders} in {group}) and has not finished it yet: a "
            "provider slow to answer, a retry waiting (backoff, Retry-After), the account's "
            f"rate limit, or commands ahead of it; its result comes later{reused}: "
            f"{_RESULTS_TAIL}")


async def senders_running(kafka: KafkaConnection) -> int | None:
    """The members of the sender's consumer group, or None when Kafka would not say in time."""
    from aiokafka.errors import KafkaError

    async def described() -> list[dict[str, object]]:
        async with admin_client(kafka, GROUP_ASK_TIMEOUT_S) as admin:
            responses = await admin.describe_consumer_groups([kafka.group(SENDER_GROUP)])
        return [group for response in responses for group in response.to_object()["groups"]]

    try:
        groups = await asyncio.wait_for(described(), GROUP_ASK_TIMEOUT_S)
    except (KafkaError, OSError, TimeoutError):
        return None
    members = [group.get("members") for group in groups if not group.get("error_code")]
    if len(members) != 1 or not isinstance(members[0], list):
        return None
    return len(members[0])
