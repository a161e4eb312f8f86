"""Outbound commands (what to send) and their results: the sender's public contract, v1.

Anything may produce a command on `switchboard.outbound.v1` (bots, other services); the
sender publishes exactly one result per command on `switchboard.outbound-results.v1`. The
command `id` is the idempotency key: a command id is sent to a provider at most once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from switchboard.addresses import address
from switchboard.events import ErrorInfo, Media

COMMAND_SCHEMA_VERSION: Literal[1] = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Button(_Model):
    """A quick-reply button; `payload` comes back as the inbound event's `postback`."""

    title: str = Field(min_length=1, max_length=64)
    payload: str = Field(min_length=1, max_length=1000)


class CommandMedia(Media):
    """A file to send, strict like the rest of the command: a misspelt key (`contentType`)
    is refused rather than dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _from_event_media(cls, value: Any) -> Any:
        """The events' `Media`, which a bot's reply holds, is taken as its fields."""
        if isinstance(value, Media) and not isinstance(value, CommandMedia):
            return value.model_dump()
        return value


class CommandKind(StrEnum):
    MESSAGE = "message"
    OPT_OUT_CONFIRMATION = "opt-out-confirmation"
    # Carrier rules (the CTIA handbook for US short codes) want HELP answered whether or
    # not the contact is subscribed, so the help text reaches opted-out contacts too.
    HELP = "help"


# The only messages an opted-out contact may still receive: compliance answers.
REACHES_OPTED_OUT = frozenset({CommandKind.OPT_OUT_CONFIRMATION, CommandKind.HELP})


class OutboundCommand(_Model):
    # `_has_content` in the published schema: a non-empty text, or at least one file.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"properties": {"text": {"type": "string", "minLength": 1}}, "required": ["text"]},
        {"properties": {"media": {"minItems": 1}}, "required": ["media"]},
    ]})

    id: str = Field(min_length=1, max_length=200, description="idempotency key, unique")
    schema_version: Literal[1] = COMMAND_SCHEMA_VERSION
    account: str = Field(min_length=1)
    to: str = Field(min_length=1, description="E.164 number or the provider's user id")
    channel: str | None = Field(default=None, description="default: the account's channel")
    text: str | None = None
    media: list[CommandMedia] = Field(default_factory=list)
    buttons: list[Button] = Field(default_factory=list, max_length=10)
    in_reply_to: str | None = Field(default=None, description="provider id of the message "
                                    "being answered")
    kind: CommandKind = CommandKind.MESSAGE
    created_at: AwareDatetime
    metadata: dict[str, str] = Field(default_factory=dict, description="echoed in the result")

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        """`4179…`, `004179…` and `+41 79 …` are one contact, spelled as inbound events spell
        it: otherwise another spelling would pass the opt-out list and leave the contact's
        conversation (and with it the order that puts an opt-out before later commands).

        Spelled for the command's channel (a Telegram chat id is no phone number); a command
        without one is spelled for its account's channel, by `addressed`."""
        if isinstance(data, dict):
            to, channel = data.get("to"), data.get("channel")
            if isinstance(to, str) and isinstance(channel, str):
                return {**data, "to": address(to, channel) or to}
        return data

    def addressed(self, default_channel: str) -> OutboundCommand:
        """This command with `to` spelled for `default_channel` (its account's) when it names
        no channel of its own: the spelling of the conversation key and the opt-out list."""
        if self.channel is not None:
            return self
        to = address(self.to, default_channel) or self.to
        return self if to == self.to else self.model_copy(update={"to": to})

    @model_validator(mode="after")
    def _has_content(self) -> OutboundCommand:
        if not self.text and not self.media:
            raise ValueError("a command needs text or media")
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> OutboundCommand:
        return cls.model_validate_json(data)


class ResultStatus(StrEnum):
    ACCEPTED = "accepted"  # the provider took the message; status events follow
    FAILED = "failed"


class OutboundResult(_Model):
    """Read leniently, unlike a command: a later v1 may add fields, and a consumer parsing
    results with this model (or the published schema) must not start failing on them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    command_id: str
    schema_version: Literal[1] = COMMAND_SCHEMA_VERSION
    account: str
    provider: str
    to: str
    status: ResultStatus
    provider_message_id: str | None = None
    error: ErrorInfo | None = Field(default=None, description="error.permanent: no retry helps")
    attempts: int = Field(ge=0)
    completed_at: AwareDatetime
    metadata: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> OutboundResult:
        return cls.model_validate_json(data)


def json_schemas() -> bytes:
    """The JSON Schemas of commands and results, published in docs/schema/."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://switchboard.dev/schema/outbound.v1.json",
        "oneOf": [{"$ref": "#/$defs/OutboundCommand"}, {"$ref": "#/$defs/OutboundResult"}],
        "$defs": {},
    }
    for model in (OutboundCommand, OutboundResult):
        part = model.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")
        schema["$defs"].update(part.pop("$defs", {}))
        schema["$defs"][model.__name__] = part
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
