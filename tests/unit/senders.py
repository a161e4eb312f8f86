"""Commands, records and results around a Sender handled without a broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import REGISTRY

from consumers.handling import Record
from switchboard.accounts import parse_accounts
from switchboard.commands import CommandKind, OutboundCommand
from switchboard.records import OutRecord, command_record
from switchboard.topics import OUTBOUND_RESULTS
from tests.unit.fakes import FakeContext

CONTACT = "+4179000111"  # the contact `command` sends to unless told
# acme sends SMS, tg Telegram messages, both through Infobip.
ACCOUNTS = parse_accounts({"accounts": {
    "acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "api_key": "ib-key", "sender": "Acme"},
    },
    "tg": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "api_key": "ib-key", "sender": "Bot",
                     "channel": "telegram"},
    },
}})


def results(ctx: FakeContext) -> list[dict[str, Any]]:
    """The results published since the last call."""
    found = [orjson.loads(r.value) for r in ctx.published if r.topic == OUTBOUND_RESULTS.name]
    ctx.published.clear()
    return found


def consumed(record: OutRecord) -> Record:
    """`record` as the runtime hands it to the sender, read back from partition 0."""
    return Record(record.topic, 0, 0, record.key, record.value, tuple(record.headers))


def command(to: str = CONTACT, kind: CommandKind = CommandKind.MESSAGE) -> OutRecord:
    """A fresh command from `acme` to `to`, as its record on the outbound topic."""
    return command_record(OutboundCommand(id=str(uuid.uuid4()), account="acme", to=to,
                                          text="Sale today", kind=kind,
                                          created_at=datetime.now(UTC)), "infobip")


def sends_counted(provider: str, account: str, outcome: str) -> float:
    """switchboard_sender_sends_total for these labels (0 before the first)."""
    return REGISTRY.get_sample_value("switchboard_sender_sends_total", {
        "provider": provider, "account": account, "outcome": outcome}) or 0.0
