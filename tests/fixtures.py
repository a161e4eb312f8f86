"""Loading the per-provider webhook fixtures (tests/fixtures/<provider>/<case>.json).

A fixture is one captured or reconstructed webhook plus what it must normalize to:

    {
      "description": "what this case shows",
      "source": "where the shape comes from (doc page, SDK test, reconstruction)",
      "request": {"content_type": "...", "query": "...", "method": "POST",
                  "headers": {...}, "body": <JSON value, or a string sent verbatim>},
      "events": [ ...expected events... ]      # or
      "error": "a fragment of the NormalizeError reason"
    }

A key outside this format, or both or neither of `events` and `error`, fails the load
(FixtureFormatError): a misspelt key would otherwise make its case check less.

Expected events list every field that is not null or empty; `received_at` and `raw_id` come
from the test (below) and `id`, when present, is checked too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from normalizers.base import WebhookRequest

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "acme"
RECEIVED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RAW_ID = "raw-0001"
_VOLATILE = {"received_at", "raw_id", "schema_version"}


class FixtureFormatError(ValueError):
    """A fixture file whose keys are not its format's."""


@dataclass(frozen=True)
class Shape:
    """The keys an object in a fixture must and may have; `nested` gives the shape of a key's
    value (of each item when the value is a list)."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    nested: Mapping[str, Shape] = field(default_factory=dict)

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise FixtureFormatError(f"{where}: should be an object, got {type(value).__name__}")
        unknown = sorted(value.keys() - self.required - self.optional)
        missing = sorted(self.required - value.keys())
        if unknown or missing:
            raise FixtureFormatError(f"{where}: unknown keys {unknown}, missing keys {missing} "
                                     "(see the loader's docstring)")
        for key, shape in self.nested.items():
            given = value.get(key)
            if given is not None:
                for item in given if isinstance(given, list) else [given]:
                    shape.check(item, f"{where} {key}")


# A webhook fixture: exactly one of `events` and `error` is expected, checked in load_fixtures.
WEBHOOK_CASE = Shape(
    frozenset({"description", "source", "request"}), frozenset({"events", "error"}),
    {"request": Shape(frozenset(), frozenset({"body", "content_type", "query", "method",
                                              "headers", "account"}))})


@dataclass(frozen=True)
class Fixture:
    provider: str
    name: str
    path: Path
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.name}"

    def body(self) -> bytes:
        body = self.spec["request"].get("body", "")
        if isinstance(body, str):
            return body.encode()
        return orjson.dumps(body)

    def request(self, *, raw_id: str = RAW_ID) -> WebhookRequest:
        req = self.spec["request"]
        return WebhookRequest(
            provider=self.provider,
            account=req.get("account", ACCOUNT),
            body=self.body(),
            received_at=RECEIVED_AT,
            raw_id=raw_id,
            content_type=req.get("content_type", "application/json"),
            query=req.get("query", ""),
            method=req.get("method", "POST"),
            headers={k.lower(): v for k, v in req.get("headers", {}).items()},
        )


def load_fixtures(provider: str | None = None) -> list[Fixture]:
    found = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        if provider and path.parent.name != provider:
            continue
        spec = orjson.loads(path.read_bytes())
        where = f"{path.parent.name}/{path.name}"
        WEBHOOK_CASE.check(spec, where)  # a misspelt key would make its case check less
        if ("events" in spec) == ("error" in spec):
            raise FixtureFormatError(f"{where}: give exactly one of 'events' and 'error'")
        found.append(Fixture(path.parent.name, path.stem, path, spec))
    return found


def comparable(event: dict[str, Any], *, keep_id: bool) -> dict[str, Any]:
    """An event dict without test-volatile keys and without null or empty values."""
    return {
        key: value
        for key, value in event.items()
        if key not in _VOLATILE
        and (keep_id or key != "id")
        and value is not None
        and value != []
    }
