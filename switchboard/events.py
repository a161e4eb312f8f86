"""The normalized message event, schema version 1: Switchboard's public contract.

Everything downstream of ingest (Kafka consumers, bots, users' own services) reads only this
shape. Changing a field's meaning needs a new schema version and a new topic; adding an
optional field does not.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, TypeVar

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1

# Fixed namespace so that every Switchboard deployment derives the same id for the same report.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c9a52-3e0b-5d6e-9b7a-5b1f0c2d4e8a")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes

# What `channel` must look like. The model's pattern and the fast path in `MessageEvent.build`
# both use it (there with `fullmatch`, whose anchors are the pattern's `^...$`: neither lets a
# trailing newline through).
_CHANNEL_BODY = r"[a-z0-9][a-z0-9_.-]*"
CHANNEL_PATTERN = f"^{_CHANNEL_BODY}$"
_channel_match = re.compile(_CHANNEL_BODY).fullmatch

# A price's amount in the published schema: a decimal as any decimal parser reads it (sign,
# fraction, exponent), never NaN or Infinity, which the model refuses. Switchboard writes
# the plain form (`"0.0015"`); the exponent is allowed so that no amount the model reads
# stops validating.
DECIMAL_PATTERN = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"

# Added to a `pattern` anchored with `$`: Python's `re.search` (what the `jsonschema` package
# uses) lets `$` match before a final newline, so `"sms\n"` passed there and nowhere else
# (ECMA-262's `$`, and the model's, match only at the end). Refusing any newline is the same
# rule for every engine, with only the tokens JSON Schema recommends (a lookahead is not).
WHOLE_STRING: dict[str, Any] = {
    "not": {"pattern": r"\n"},
    "$comment": "no newline: a trailing one would pass `$` in some regex engines",
}


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


_M = TypeVar("_M", bound=_Model)


def _checked_instance(cls: type[_M], values: dict[str, Any], fields: set[str]) -> _M:
    """An instance of `cls` holding `values`, which the caller has checked to be exactly what
    validating them would give: every field (`fields` are their names), in field order, of its
    exact type, within its constraints. Sets what `BaseModel.model_construct` sets, without
    its per-field loop; every field counts as set, as when all are passed to the constructor.
    """
    instance = object.__new__(cls)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", fields.copy())
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def _all_text(values: Iterable[Any]) -> bool:
    """Every value None or exactly `str`: what optional text fields hold once validated."""
    return all(value is None or value.__class__ is str for value in values)


class ErrorInfo(_Model):
    """Why a message failed, as the provider said it."""

    code: str | None = None
    description: str | None = None
    permanent: bool = False

    @classmethod
    def build(cls, *, code: str | None = None, description: str | None = None,
              permanent: bool = False) -> ErrorInfo:
        """`ErrorInfo(code=..., description=..., permanent=...)`, cheaper when the values are
        already of their exact types (normalizers' case); anything else is validated."""
        values = {"code": code, "description": description, "permanent": permanent}
        if cls is ErrorInfo and _all_text((code, description)) and permanent.__class__ is bool:
            return _checked_instance(cls, values, _ERROR_INFO_FIELDS)
        return cls(**values)


class ProviderStatus(_Model):
    """The provider's own status, kept verbatim so nothing is lost in mapping."""

    code: str | None = None
    name: str | None = None
    group: str | None = None
    description: str | None = None

    @classmethod
    def build(cls, *, code: str | None = None, name: str | None = None,
              group: str | None = None, description: str | None = None) -> ProviderStatus:
        """`ProviderStatus(code=..., name=..., group=..., description=...)`, cheaper when the
        values are None or exact `str` (normalizers' case); anything else is validated."""
        values = {"code": code, "name": name, "group": group, "description": description}
        if cls is ProviderStatus and _all_text(values.values()):
            return _checked_instance(cls, values, _PROVIDER_STATUS_FIELDS)
        return cls(**values)


class Media(_Model):
    url: str
    content_type: str | None = None
    caption: str | None = None

    @classmethod
    def build(cls, url: str, *, content_type: str | None = None,
              caption: str | None = None) -> Media:
        """`Media(url=..., content_type=..., caption=...)`, cheaper when the values are
        already exact `str` or None (normalizers' case); anything else is validated."""
        values = {"url": url, "content_type": content_type, "caption": caption}
        if cls is Media and url.__class__ is str and _all_text((content_type, caption)):
            return _checked_instance(cls, values, _MEDIA_FIELDS)
        return cls(**values)


class Price(_Model):
    # A decimal string on the wire: money must not pass through binary floats.
    amount: Decimal = Field(json_schema_extra={"type": "string", "pattern": DECIMAL_PATTERN,
                                               **WHOLE_STRING})
    currency: str

    @field_serializer("amount")
    def _amount_as_string(self, amount: Decimal) -> str:
        return format(amount, "f")


class MessageEvent(_Model):
    """One inbound message or one status report about a message."""

    # `_status_matches_type` in the published schema, so a consumer validating with it
    # refuses what the model refuses.
    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"type": {"const": EventType.STATUS.value}}, "required": ["type"]},
        "then": {"properties": {"status": {"not": {"type": "null"}}}, "required": ["status"]},
        "else": {"properties": {"status": {"type": "null"}}},
    })

    id: uuid.UUID
    type: EventType
    schema_version: Literal[1] = SCHEMA_VERSION
    provider: str
    account: str
    channel: str = Field(pattern=CHANNEL_PATTERN, json_schema_extra=WHOLE_STRING)
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
    occurred_at: AwareDatetime | None = None
    received_at: AwareDatetime
    raw_id: str

    @model_validator(mode="after")
    def _status_matches_type(self) -> MessageEvent:
        if self.type is EventType.STATUS and self.status is None:
            raise ValueError("a message.status event needs a status")
        if self.type is EventType.INBOUND and self.status is not None:
            raise ValueError("a message.inbound event carries no status")
        return self

    @classmethod
    def build(
        cls,
        *,
        id: uuid.UUID,
        type: EventType,
        provider: str,
        account: str,
        channel: str,
        direction: Direction,
        received_at: datetime,
        raw_id: str,
        message_id: str | None = None,
        correlation_id: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        status: Status | None = None,
        error: ErrorInfo | None = None,
        provider_status: ProviderStatus | None = None,
        text: str | None = None,
        media: Sequence[Media] = (),
        postback: str | None = None,
        in_reply_to: str | None = None,
        segments: int | None = None,
        price: Price | None = None,
        occurred_at: datetime | None = None,
    ) -> MessageEvent:
        """The event with these fields (all of them count as set), as `MessageEvent(...)` would
        validate it, for a fraction of the cost: what normalizers build on every webhook.

        When every value already is of its field's exact type and meets its constraints (the
        channel pattern, `segments` >= 0, a status exactly on status events), validating
        would return the values unchanged, so they are stored as they are. Anything else, a
        coercible value or a normalizer bug, goes through pydantic's validation, which coerces
        it or raises its ValidationError: an invalid event is never produced.
        """
        if (
            cls is MessageEvent  # a subclass may have more fields: it is validated
            and id.__class__ is uuid.UUID
            and (status.__class__ is Status if type is EventType.STATUS
                 else type is EventType.INBOUND and status is None)
            and direction.__class__ is Direction
            and provider.__class__ is str
            and account.__class__ is str
            and channel.__class__ is str
            and _channel_match(channel) is not None
            and received_at.__class__ is datetime and received_at.utcoffset() is not None
            and raw_id.__class__ is str
            and _all_text((message_id, correlation_id, from_, to, text, postback, in_reply_to))
            and (error is None or error.__class__ is ErrorInfo)
            and (provider_status is None or provider_status.__class__ is ProviderStatus)
            and (media.__class__ is tuple or media.__class__ is list)
            and (not media or all(item.__class__ is Media for item in media))
            and (segments is None or (segments.__class__ is int and segments >= 0))
            and (price is None or price.__class__ is Price)
            and (occurred_at is None or (occurred_at.__class__ is datetime
                                         and occurred_at.utcoffset() is not None))
        ):
            return _checked_instance(cls, {
                "id": id, "type": type, "schema_version": SCHEMA_VERSION, "provider": provider,
                "account": account, "channel": channel, "direction": direction,
                "message_id": message_id, "correlation_id": correlation_id, "from_": from_,
                "to": to, "status": status, "error": error, "provider_status": provider_status,
                "text": text, "media": list(media), "postback": postback,
                "in_reply_to": in_reply_to, "segments": segments, "price": price,
                "occurred_at": occurred_at, "received_at": received_at, "raw_id": raw_id,
            }, _MESSAGE_EVENT_FIELDS)
        return cls(
            id=id, type=type, schema_version=SCHEMA_VERSION, provider=provider, account=account,
            channel=channel, direction=direction, message_id=message_id,
            correlation_id=correlation_id, from_=from_, to=to, status=status, error=error,
            provider_status=provider_status, text=text, media=media, postback=postback,
            in_reply_to=in_reply_to, segments=segments, price=price, occurred_at=occurred_at,
            received_at=received_at, raw_id=raw_id,
        )

    def to_json(self) -> bytes:
        # What model_dump_json(by_alias=True).encode() gives, without its str round trip.
        return self.__pydantic_serializer__.to_json(self, by_alias=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: bytes | str) -> MessageEvent:
        return cls.model_validate_json(data)

    @property
    def contact(self) -> str | None:
        """The end user's address: who the conversation is with."""
        return self.from_ if self.direction is Direction.INBOUND else self.to


_ERROR_INFO_FIELDS = set(ErrorInfo.model_fields)
_PROVIDER_STATUS_FIELDS = set(ProviderStatus.model_fields)
_MEDIA_FIELDS = set(Media.model_fields)
_MESSAGE_EVENT_FIELDS = set(MessageEvent.model_fields)


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
    when = occurred_at.isoformat() if occurred_at else ""
    name = (f"{provider}\x1f{account}\x1f{type.value}\x1f{message_id or ''}\x1f{status or ''}"
            f"\x1f{when}\x1f{fallback}")
    # uuid.uuid5(EVENT_ID_NAMESPACE, name) without its per-call argument checks: the first 128
    # bits of SHA-1 over namespace and name, with the RFC 4122 variant and version 5.
    return uuid.UUID(bytes=hashlib.sha1(_NAMESPACE_BYTES + name.encode(),
                                         usedforsecurity=False).digest()[:16],
                     version=5)


def json_schema() -> bytes:
    """The JSON Schema of the event, as published in docs/schema/message-event.v1.json."""
    schema = MessageEvent.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://switchboard.dev/schema/message-event.v1.json"
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
