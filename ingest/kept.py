"""Kept records read back for replay: a dead letter (a webhook ingest could not turn into
events, or a record a worker gave up on) or a raw request, what each holds, and which of them
a replay selects."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from normalizers import WebhookRequest
from switchboard.logs import scrub
from switchboard.records import OutRecord, raw_body

Source = Literal["dead-letter", "raw"]


class Unreplayable(Exception):
    """A kept record that replay cannot read back; the message says why."""


@dataclass(frozen=True)
class Kept:
    """One dead letter, or one raw request, as read back from its topic."""

    id: str
    stage: str  # `normalize`, `worker:<name>`; `raw` for the raw topic
    provider: str
    account: str
    payload: Mapping[str, Any]
    at_ms: int = 0  # when it was kept (the record's timestamp)
    # Why it was kept, masked ("" for a raw request: it has none). Masked again as read:
    # letters kept before their reasons were masked hold a quoted secret as it was.
    reason: str = ""
    # Where it was read (-1: not read from a topic): what `replay --after` continues from.
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True)
class Selection:
    """Which kept records to replay: each filter that is given must match."""

    providers: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    # Texts of which the letter's reason must hold one, in any case: after a fix, only the
    # letters that failed for what it fixed (the others would fail again, or be answered twice).
    reasons: frozenset[str] = frozenset()

    def matches(self, kept: Kept) -> bool:
        return ((not self.providers or kept.provider in self.providers)
                and (not self.accounts or kept.account in self.accounts)
                and (not self.stages or kept.stage in self.stages)
                and (not self.ids or kept.id in self.ids)
                and (not self.reasons or self._reason_matches(kept.reason)))

    def _reason_matches(self, reason: str) -> bool:
        said = reason.casefold()
        return any(text.casefold() in said for text in self.reasons)


def read_kept(source: Source, value: bytes | None, at_ms: int = 0, *, partition: int = -1,
              offset: int = -1) -> Kept:
    """A dead letter's or raw record's value as a Kept, or Unreplayable."""
    try:
        decoded = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise Unreplayable(f"not JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise Unreplayable("not a JSON object")
    if source == "raw":
        decoded = {"id": decoded.get("id"), "stage": "raw", "provider": decoded.get("provider"),
                   "account": decoded.get("account"), "payload": decoded}
    kept_id, stage, provider, account, payload, reason = (
        decoded.get(name) for name in ("id", "stage", "provider", "account", "payload", "reason"))
    if not (isinstance(kept_id, str) and isinstance(stage, str) and isinstance(provider, str)
            and isinstance(account, str)):
        raise Unreplayable("id, stage, provider or account is missing")
    if not isinstance(payload, dict):
        raise Unreplayable("it holds no payload")
    # A letter without a reason (a foreign producer's) is replayed all the same.
    return Kept(kept_id, stage, provider, account, payload, at_ms,
                scrub(reason) if isinstance(reason, str) else "", partition, offset)


def _text(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise Unreplayable(f"its {name!r} is not text")
    return value


def _bytes(encoded: Any, what: str) -> bytes:
    try:
        if not isinstance(encoded, str):
            raise TypeError
        return base64.b64decode(encoded, validate=True)
    except (TypeError, binascii.Error):
        raise Unreplayable(f"its {what} is not base64") from None


def webhook_of(envelope: Mapping[str, Any]) -> WebhookRequest:
    """The request a raw envelope (see switchboard.records.raw_envelope) records. Ingest kept
    only some of its headers; no normalizer reads headers (they carry authentication)."""
    _text(envelope, "body")  # raw_body takes it as text
    headers = envelope.get("headers")
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise Unreplayable("its 'headers' are not text")
    try:
        received_at = datetime.fromisoformat(_text(envelope, "received_at"))
    except ValueError:
        raise Unreplayable("its 'received_at' is not a time") from None
    try:
        body = raw_body(envelope)
    except binascii.Error:
        raise Unreplayable("its body is not base64") from None
    return WebhookRequest(
        provider=_text(envelope, "provider"), account=_text(envelope, "account"), body=body,
        received_at=received_at, raw_id=_text(envelope, "id"),
        content_type=_text(envelope, "content_type"), query=_text(envelope, "query"),
        method=_text(envelope, "method"), headers=headers)


def record_of(payload: Mapping[str, Any]) -> OutRecord:
    """The record a worker's dead letter holds, as it was on its topic, headers included
    (consumers tell record kinds apart by `ce_type`)."""
    if "headers_b64" not in payload:
        raise Unreplayable("kept without its headers (by a version before replay), so it "
                           "cannot be put back as it was")
    pairs = payload["headers_b64"]
    if not isinstance(pairs, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
            for pair in pairs):
        raise Unreplayable("its headers are not [name, value] pairs")
    headers = [(name, None if value is None else _bytes(value, f"header {name!r}"))
               for name, value in pairs]
    encoded_key = payload.get("key_b64")
    key = None if encoded_key is None else _bytes(encoded_key, "key")
    return OutRecord(_text(payload, "topic"), _bytes(payload.get("value_b64"), "value"), key,
                     headers)

