"""ubiqio webhooks -> message events. (Placeholder until its normalizer lands.)"""

from __future__ import annotations

from normalizers.base import DEFAULT_ACK, Ack, NormalizeError, WebhookRequest
from switchboard.events import MessageEvent

NAME = "ubiqio"


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    raise NormalizeError(f"{NAME} webhooks are not supported yet")


def acknowledge(request: WebhookRequest) -> Ack:
    return DEFAULT_ACK
