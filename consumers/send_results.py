"""The results the sender publishes for its commands, accepted or failed, with what the
provider said in a form a result can store."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from consumers.outbound import SendReceipt
from switchboard.commands import OutboundCommand, OutboundResult, ResultStatus
from switchboard.events import ErrorInfo

# A lone UTF-16 surrogate: JSON may spell one ("\ud83d", what a JavaScript backend makes of an
# emoji it cut in half) and Python reads it, but it cannot be written as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str | None) -> str | None:
    """A provider's text as a result can carry it: lone surrogates replaced by U+FFFD. Storing
    the result would fail otherwise, again at every retry, and the command be dead-lettered
    without one although the provider answered."""
    if text is None or text.isascii():
        return text
    return _LONE_SURROGATE.sub("\ufffd", text)


def accepted_result(command: OutboundCommand, provider: str, receipt: SendReceipt,
                    attempts: int) -> OutboundResult:
    return OutboundResult(
        command_id=command.id, account=command.account, provider=provider, to=command.to,
        status=ResultStatus.ACCEPTED,
        provider_message_id=storable(receipt.provider_message_id),
        attempts=attempts, completed_at=datetime.now(UTC), metadata=command.metadata)


def failed_result(command: OutboundCommand, provider: str, code: str, description: str, *,
                  attempts: int, permanent: bool = True) -> OutboundResult:
    return OutboundResult(
        command_id=command.id, account=command.account, provider=provider, to=command.to,
        status=ResultStatus.FAILED,
        error=ErrorInfo(code=storable(code), description=storable(description),
                        permanent=permanent),
        attempts=attempts, completed_at=datetime.now(UTC), metadata=command.metadata)
