"""docs/events.md and docs/schema/message-event.v1.json are the public contract: what they show
must be what the code emits, so a consumer who copies an example or validates with the schema
gets what lands on the topics."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from normalizers import normalize
from switchboard.events import Direction, EventType, MessageEvent, Status
from switchboard.records import event_record
from tests.fixtures import FIXTURES, Fixture, load_fixtures

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DOC = (ROOT / "docs/events.md").read_text()
SCHEMA: dict[str, Any] = orjson.loads((ROOT / "docs/schema/message-event.v1.json").read_bytes())
# The docs promise RFC 3339 in UTC with a `Z`, fractional seconds only when not zero.
UTC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")
# uuid as jsonschema checks it; date-time as the docs promise it (the library's own check
# would pass any offset, and needs an extra package to check anything).
FORMATS = FormatChecker(["uuid"])
FORMATS.checks("date-time")(lambda value: not isinstance(value, str)
                            or UTC_TIME.fullmatch(value) is not None)
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FORMATS)


def schema_problems(value: Any) -> list[str]:
    """Where `value` breaks the published schema (empty when it does not)."""
    return [f"{'.'.join(map(str, error.absolute_path)) or '$'}: {error.message}"
            for error in VALIDATOR.iter_errors(value)]


def emitted(fixture: Fixture) -> list[dict[str, Any]]:
    """The events of a fixture as they go on the topic (JSON decoded)."""
    return [orjson.loads(event.to_json()) for event in normalize(fixture.request())]


def first_event(fixture_id: str) -> dict[str, Any]:
    return emitted(next(f for f in load_fixtures() if f.id == fixture_id))[0]


@pytest.mark.parametrize("fixture", [f for f in load_fixtures() if f.spec.get("events")],
                         ids=lambda f: f.id)
def test_every_emitted_event_validates_against_the_published_schema(fixture: Fixture) -> None:
    for event in emitted(fixture):
        assert set(event) == set(SCHEMA["properties"]), "every key is written, and only those"
        assert schema_problems(event) == []


def test_the_schema_rejects_what_the_model_rejects() -> None:
    """The checker above is no rubber stamp: the schema refuses what the model refuses."""
    event = first_event("infobip/sms-delivery-v3")
    for key, bad in [("status", "bounced"), ("type", "message.read"), ("schema_version", 2),
                     ("channel", "SMS"), ("segments", -1), ("received_at", "yesterday")]:
        assert schema_problems({**event, key: bad}), key
    assert schema_problems({k: v for k, v in event.items() if k != "raw_id"})


def test_schema_enums_are_the_models() -> None:
    defs = SCHEMA["$defs"]
    assert defs["Status"]["enum"] == [s.value for s in Status]
    assert defs["EventType"]["enum"] == [t.value for t in EventType]
    assert defs["Direction"]["enum"] == [d.value for d in Direction]


def _table_column(heading: str) -> list[str]:
    """The first column's code values of the table under `heading` in docs/events.md (its
    header row left out)."""
    section = EVENTS_DOC.split(heading, 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")][1:]
    return [value for row in rows for value in re.findall(r"`([^`]+)`", row.split("|")[1])]


def test_documented_status_and_type_values_are_the_models() -> None:
    assert _table_column("### Status values") == [s.value for s in Status]
    assert _table_column("## The two event types") == [t.value for t in EventType]


def _doc_examples() -> list[tuple[str, dict[str, Any]]]:
    """(fixture id, event) of each JSON example: the fixture is the last one the text before
    the example names."""
    examples = []
    parts = re.split(r"```json\n(.*?)```", EVENTS_DOC, flags=re.S)
    for before, block in zip(parts[0::2], parts[1::2], strict=False):
        named = re.findall(r"tests/fixtures/([\w-]+/[\w-]+)\.json", before)
        assert named, f"no fixture named before the example {block[:60]!r}"
        examples.append((named[-1], orjson.loads(block)))
    return examples


DOC_EXAMPLES = _doc_examples()


def test_docs_have_examples() -> None:
    assert len(DOC_EXAMPLES) >= 4


@pytest.mark.parametrize(("fixture_id", "example"), DOC_EXAMPLES, ids=[f for f, _ in DOC_EXAMPLES])
def test_event_example_in_docs_is_what_its_fixture_gives(fixture_id: str,
                                                         example: dict[str, Any]) -> None:
    assert schema_problems(example) == []
    assert orjson.loads(MessageEvent.model_validate(example).to_json()) == example
    fixture = next(f for f in load_fixtures() if f.id == fixture_id)
    assert fixture.path.is_relative_to(FIXTURES)
    given = {event["id"]: event for event in emitted(fixture)}
    assert example["id"] in given, "the example's id is not one its fixture gives"
    volatile = {"received_at", "raw_id"}
    assert {k: v for k, v in given[example["id"]].items() if k not in volatile} == \
        {k: v for k, v in example.items() if k not in volatile}


def test_header_example_in_docs_is_what_the_record_has() -> None:
    block = EVENTS_DOC.split("as produced by\n`switchboard/records.py`:", 1)[1]
    lines = block.split("```\n", 2)[1].splitlines()
    shown = [tuple(line.split(None, 1)) for line in lines]
    record = event_record(MessageEvent.model_validate(DOC_EXAMPLES[0][1]))
    assert shown == [("topic", record.topic), ("key", (record.key or b"").decode()),
                     *((name, (value or b"").decode()) for name, value in record.headers)]


def test_unknown_fields_are_ignored_at_every_level_as_the_versioning_rules_say() -> None:
    event = first_event("webex/sms-failed-invalid-sender")
    grown = {**event, "new_field": 1, "error": {**event["error"], "new_field": 1},
             "provider_status": {**event["provider_status"], "new_field": 1}}
    assert schema_problems(grown) == []
    assert orjson.loads(MessageEvent.model_validate(grown).to_json()) == event


@pytest.mark.parametrize(("key", "value"), [("schema_version", 2), ("status", "bounced"),
                                            ("type", "message.read"), ("direction", "both")])
def test_another_version_or_closed_set_value_is_refused(key: str, value: object) -> None:
    event = first_event("infobip/sms-delivery-v3")
    with pytest.raises(ValidationError):
        MessageEvent.model_validate({**event, key: value})
    assert schema_problems({**event, key: value})


def test_channel_and_provider_are_open_sets() -> None:
    event = first_event("infobip/sms-delivery-v3")
    new = {**event, "channel": "carrier-pigeon", "provider": "acme-sms"}
    assert schema_problems(new) == []
    assert MessageEvent.model_validate(new).channel == "carrier-pigeon"


def _documented_id(event: dict[str, Any]) -> uuid.UUID:
    """An example's id by the recipe docs/events.md gives (examples with a message id)."""
    namespace = re.search(r"uuid5\(([0-9a-f-]{36}),", EVENTS_DOC)
    assert namespace, "docs/events.md gives no id namespace"
    provider_status = event["provider_status"] or {}
    status = provider_status.get("name") or provider_status.get("code") or event["status"]
    occurred_at = event["occurred_at"]
    parts = [event["provider"], event["account"], event["type"], event["message_id"],
             status or "", datetime.fromisoformat(occurred_at).isoformat() if occurred_at else "",
             ""]
    return uuid.uuid5(uuid.UUID(namespace.group(1)), "\x1f".join(parts))


@pytest.mark.parametrize(("fixture_id", "example"), DOC_EXAMPLES, ids=[f for f, _ in DOC_EXAMPLES])
def test_the_documented_id_recipe_gives_the_examples_ids(fixture_id: str,
                                                         example: dict[str, Any]) -> None:
    assert str(_documented_id(example)) == example["id"]


def test_a_status_report_without_a_contact_is_keyed_as_the_docs_say() -> None:
    """Infobip's per-channel seen reports name no contact: one key per account, which the docs
    tell consumers not to order a conversation by."""
    assert "the key `provider|account|`, for example\n`infobip|acme|`" in EVENTS_DOC
    seen = [f for f in load_fixtures()
            if f.id.startswith("infobip/") and f.id.endswith(("seen-per-channel",
                                                             "seen-per-channel-unlabelled"))]
    assert len(seen) == 4
    for fixture in seen:
        for event in normalize(fixture.request()):
            assert event_record(event).key == b"infobip|acme|", fixture.id
