"""The normalized message event, schema version 1: Switchboard's public contract.

Everything downstream of ingest (Kafka consumers, bots, users' own services) reads only this
shape. Changing a field's meaning needs a new schema version and a new topic; adding an
optional field does not.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

SCHEMA_VERSION: Literal[1] = 1

# Fixed namespace so that every Switchboard deployment derives the same id for the same report.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c9a52-3e0b-5d6e-9b7a-5b1f0c2d4e8a")

PROVIDERS = ("infobip", "infobip-omnichat", "bird", "webex", "ubiqio")


class EventType(StrEnum):
    INBOUND = "message.inbound"
    STATUS = "message.status"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Status(StrEnum):
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    SENT = "sent"
    DELIVERED = "delivered"
    SEEN = "seen"
    REJECTED = "rejected"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    DELETED = "deleted"
    UNKNOWN = "unknown"


class _Model(BaseModel):
    # extra="ignore": a consumer on this version keeps working when v1 gains a field.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class ErrorInfo(_Model):
    """Why a message failed, as the provider said it."""

    code: str | None = None
    description: str | None = None
    permanent: bool = False


class ProviderStatus(_Model):
    """The provider's own status, kept verbatim so nothing is lost in mapping."""

    code: str | None = None
    name: str | None = None
    group: str | None = None
    description: str | None = None


class Media(_Model):
    url: str
    content_type: str | None = None
    caption: str | None = None


class Price(_Model):
    # A decimal string on the wire: money must not pass through binary floats.
    amount: Decimal = Field(json_schema_extra={"type": "string"})
    currency: str

    @field_serializer("amount")
    def _amount_as_string(self, amount: Decimal) -> str:
        return format(amount, "f")


class MessageEvent(_Model):
    """One inbound message or one status report about a message."""

    id: uuid.UUID
    type: EventType
    schema_version: Literal[1] = SCHEMA_VERSION
    provider: str
    account: str
    channel: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    direction: Direction
    message_id: str | None = None
    correlation_id: str | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    status: Status | None = None
    error: ErrorInfo | None = None
    provider_status: ProviderStatus | None = None
    text: str | None = None
    media: list[Media] = Field(default_factory=list)
    postback: str | None = None
    in_reply_to: str | None = None
    segments: int | None = Field(default=None, ge=0)
    price: Price | None = None
    occurred_at: datetime | None = None
    received_at: datetime
    raw_id: str

    @model_validator(mode="after")
    def _status_matches_type(self) -> MessageEvent:
        if self.type is EventType.STATUS and self.status is None:
            raise ValueError("a message.status event needs a status")
        if self.type is EventType.INBOUND and self.status is not None:
            raise ValueError("a message.inbound event carries no status")
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: bytes | str) -> MessageEvent:
        return cls.model_validate_json(data)

    @property
    def contact(self) -> str | None:
        """The end user's address: who the conversation is with."""
        return self.from_ if self.direction is Direction.INBOUND else self.to


def event_id(
    *,
    provider: str,
    account: str,
    type: EventType,
    message_id: str | None,
    status: str | None,
    occurred_at: datetime | None,
    fallback: str = "",
) -> uuid.UUID:
    """Derive an event id from what identifies the report, so a retried webhook keeps its id.

    `fallback` carries extra identifying content for reports that have no provider message id.
    """
    parts = (
        provider,
        account,
        type.value,
        message_id or "",
        status or "",
        occurred_at.isoformat() if occurred_at else "",
        fallback,
    )
    return uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts))


def json_schema() -> bytes:
    """The JSON Schema of the event, as published in docs/schema/message-event.v1.json."""
    schema = MessageEvent.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://switchboard.dev/schema/message-event.v1.json"
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
