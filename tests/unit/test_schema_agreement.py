"""The published JSON Schemas (docs/schema/) refuse what the models refuse: a consumer validating
with the schema must not pass a record that Switchboard's own readers (the bots, the sender)
then refuse. Each case below is run through both, and both must give its verdict."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import BaseModel, ValidationError

from switchboard.commands import OutboundCommand, OutboundResult, json_schemas
from switchboard.events import MessageEvent, json_schema

# Formats asserted, as docs/events.md tells consumers to: RFC 3339 with an offset, any offset.
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
FORMATS = FormatChecker(["uuid"])
FORMATS.checks("date-time")(lambda value: not isinstance(value, str)
                            or RFC3339.fullmatch(value) is not None)
EVENT_SCHEMA = Draft202012Validator(orjson.loads(json_schema()), format_checker=FORMATS)
OUTBOUND_SCHEMA = Draft202012Validator(orjson.loads(json_schemas()), format_checker=FORMATS)

STATUS = {"id": "6f1c9a52-3e0b-5d6e-9b7a-5b1f0c2d4e8a", "type": "message.status",
          "schema_version": 1, "provider": "bird", "account": "a", "channel": "sms",
          "direction": "outbound", "status": "delivered",
          "received_at": "2026-01-01T00:00:00Z", "raw_id": "r1"}
INBOUND = {**STATUS, "type": "message.inbound", "direction": "inbound", "status": None,
           "text": "hi"}
COMMAND = {"id": "c1", "account": "a", "to": "+41790000001", "text": "hi",
           "created_at": "2026-01-01T00:00:00Z"}
RESULT = {"command_id": "c1", "account": "a", "provider": "bird", "to": "+41790000001",
          "status": "accepted", "attempts": 1, "completed_at": "2026-01-01T00:00:00Z"}
FILE = {"url": "https://example.com/a.jpg"}


def _priced(amount: object) -> dict[str, Any]:
    return {**STATUS, "price": {"amount": amount, "currency": "EUR"}}


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}


# (case, record, accepted): both the model and the schema must give `accepted`.
EVENTS: list[tuple[str, dict[str, Any], bool]] = [
    ("status event", STATUS, True),
    ("inbound event", INBOUND, True),
    ("inbound event without a status key", _without(INBOUND, "status"), True),
    ("status event without a status", {**STATUS, "status": None}, False),
    ("status event without a status key", _without(STATUS, "status"), False),
    ("inbound event with a status", {**INBOUND, "status": "delivered"}, False),
    ("status value not in the set", {**STATUS, "status": "bounced"}, False),
    ("another schema version", {**STATUS, "schema_version": 2}, False),
    ("no raw_id", _without(STATUS, "raw_id"), False),
    ("a new channel", {**STATUS, "channel": "carrier-pigeon.v2_x"}, True),
    ("upper-case channel", {**STATUS, "channel": "SMS"}, False),
    ("channel with a trailing newline", {**STATUS, "channel": "sms\n"}, False),
    ("channel with a leading newline", {**STATUS, "channel": "\nsms"}, False),
    ("empty channel", {**STATUS, "channel": ""}, False),
    ("channel starting with a dot", {**STATUS, "channel": ".sms"}, False),
    ("negative segments", {**STATUS, "segments": -1}, False),
    ("zero segments", {**STATUS, "segments": 0}, True),
    ("received_at with another offset", {**STATUS, "received_at": "2026-01-01T01:00:00+01:00"},
     True),
    ("received_at without an offset", {**STATUS, "received_at": "2026-01-01T00:00:00"}, False),
    ("occurred_at without an offset", {**STATUS, "occurred_at": "2026-01-01T00:00:00"}, False),
    ("id that is no uuid", {**STATUS, "id": "event-1"}, False),
    ("a field added later in v1", {**STATUS, "new_field": {"x": 1}}, True),
    ("media item without a url", {**INBOUND, "media": [{"caption": "c"}]}, False),
    ("media caption that is no string", {**INBOUND, "media": [{**FILE, "caption": 1}]}, False),
    ("error.permanent null", {**STATUS, "error": {"permanent": None}}, False),
    ("price", _priced("0.0075"), True),
    ("price of zero", _priced("0"), True),
    ("negative price", _priced("-1.5"), True),
    ("price with an exponent", _priced("1.5E-3"), True),
    ("price with a sign and no integer part", _priced("+.5e2"), True),
    ("price with no fraction digits", _priced("5."), True),
    ("price that is no number", _priced("abc"), False),
    ("price NaN", _priced("NaN"), False),
    ("price Infinity", _priced("Infinity"), False),
    ("price with a decimal comma", _priced("1,5"), False),
    ("empty price", _priced(""), False),
    ("price with a bare exponent", _priced("1e"), False),
    ("price in hexadecimal", _priced("0x10"), False),
    ("price without a currency", {**STATUS, "price": {"amount": "1"}}, False),
]

COMMANDS: list[tuple[str, dict[str, Any], bool]] = [
    ("text", COMMAND, True),
    ("a file, no text", {**_without(COMMAND, "text"), "media": [FILE]}, True),
    ("a file and an empty text", {**COMMAND, "text": "", "media": [FILE]}, True),
    ("neither text nor media", _without(COMMAND, "text"), False),
    ("null text, no media", {**COMMAND, "text": None}, False),
    ("empty text, no media", {**COMMAND, "text": ""}, False),
    ("empty text, empty media", {**COMMAND, "text": "", "media": []}, False),
    ("a misspelt field", {**COMMAND, "txt": "hi"}, False),
    ("a misspelt media field", {**COMMAND, "media": [{**FILE, "contentType": "x"}]}, False),
    ("a button", {**COMMAND, "buttons": [{"title": "Yes", "payload": "y"}]}, True),
    ("a button without a title", {**COMMAND, "buttons": [{"title": "", "payload": "y"}]}, False),
    ("eleven buttons", {**COMMAND, "buttons": [{"title": "t", "payload": "p"}] * 11}, False),
    ("an id of 201 characters", {**COMMAND, "id": "c" * 201}, False),
    ("an empty to", {**COMMAND, "to": ""}, False),
    ("an unknown kind", {**COMMAND, "kind": "marketing"}, False),
    ("created_at without an offset", {**COMMAND, "created_at": "2026-01-01T00:00:00"}, False),
    ("metadata that is no string", {**COMMAND, "metadata": {"a": 1}}, False),
    ("another schema version", {**COMMAND, "schema_version": 2}, False),
]

RESULTS: list[tuple[str, dict[str, Any], bool]] = [
    ("accepted", RESULT, True),
    ("failed, with an error", {**RESULT, "status": "failed",
                               "error": {"code": "x", "permanent": True}}, True),
    ("a field added later in v1", {**RESULT, "cost": {"amount": "0.01"}}, True),
    ("a status not in the set", {**RESULT, "status": "queued"}, False),
    ("negative attempts", {**RESULT, "attempts": -1}, False),
    ("no command_id", _without(RESULT, "command_id"), False),
]

CASES = ([("event", MessageEvent, EVENT_SCHEMA, *case) for case in EVENTS]
         + [("command", OutboundCommand, OUTBOUND_SCHEMA, *case) for case in COMMANDS]
         + [("result", OutboundResult, OUTBOUND_SCHEMA, *case) for case in RESULTS])


def _model_reads(model: type[BaseModel], record: dict[str, Any]) -> bool:
    try:
        model.model_validate_json(orjson.dumps(record))
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("kind", "model", "schema", "case", "record", "accepted"), CASES,
                         ids=[f"{kind}: {case}" for kind, _, _, case, _, _ in CASES])
def test_the_model_and_the_published_schema_agree(
        kind: str, model: type[BaseModel], schema: Draft202012Validator, case: str,
        record: dict[str, Any], accepted: bool) -> None:
    assert _model_reads(model, record) is accepted, "the model"
    assert schema.is_valid(record) is accepted, "the schema"


# What the model's lax reading coerces and the schema, the contract for what is written,
# refuses: these are never written (the model writes each of them in its canonical form,
# which the schema accepts). Listed so that a change of either side is seen.
LAX: list[tuple[str, type[BaseModel], Draft202012Validator, dict[str, Any]]] = [
    ("price amount as a JSON number", MessageEvent, EVENT_SCHEMA, _priced(1.5)),
    ("price amount with spaces", MessageEvent, EVENT_SCHEMA, _priced(" 1.5\n")),
    ("price amount with underscores", MessageEvent, EVENT_SCHEMA, _priced("1_000")),
    ("segments as a string", MessageEvent, EVENT_SCHEMA, {**STATUS, "segments": "3"}),
    ("a unix time", MessageEvent, EVENT_SCHEMA, {**STATUS, "received_at": 1767225600}),
    ("a uuid without hyphens", MessageEvent, EVENT_SCHEMA,
     {**STATUS, "id": "6f1c9a523e0b5d6e9b7a5b1f0c2d4e8a"}),
    ("attempts as a string", OutboundResult, OUTBOUND_SCHEMA, {**RESULT, "attempts": "1"}),
]


@pytest.mark.parametrize(("case", "model", "schema", "record"), LAX, ids=[c[0] for c in LAX])
def test_what_the_model_coerces_it_writes_as_the_schema_says(
        case: str, model: type[BaseModel], schema: Draft202012Validator,
        record: dict[str, Any]) -> None:
    assert not schema.is_valid(record)
    written = model.model_validate_json(orjson.dumps(record)).model_dump_json(by_alias=True)
    assert schema.is_valid(orjson.loads(written))
