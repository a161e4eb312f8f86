"""MessageBird v1 signs a query sorted, not in the order it was sent. Whatever a hostile sender
reorders, what Bird's legacy reader reads of a query v1 accepted must not change: every order
of the same fields (the same signature) is refused, or read alike. Names spelt every way the
two readings could part (case, %-escapes, raw UTF-8 and Latin-1 bytes, `+`, a leading `?`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from urllib.parse import parse_qsl, urlencode

import pytest

from ingest.auth import AuthError, SignedRequest, verify_messagebird_v1
from normalizers import _bird_legacy
from normalizers.base import NormalizeError
from normalizers.bodies import form_pairs, query_text
from switchboard.accounts import AuthConfig

SECRET = "v1-signing-key"
NOW = 1_790_000_000
NAMES = [b"id", b"ID", b"Id", b"%69d", b"i%64", b"%49D", b"status", b"STATUS", b"stat%75s",
         b"caf\xc3\xa9", b"caf%C3%A9", b"CAF\xc3\x89", b"caf\xe9", b"caf%E9", b"i+d", b"id+",
         b"\xe2\x84\xaa", b"k", b"mediaUrls", b"mediaurls", b"?id", b"%3Fid", b"??status",
         b"body", b"BODY"]
VALUES = [b"a", b"b", b"", b"a+b", b"a%20b", b"%E9", b"\xc3\xa9"]


def config() -> AuthConfig:
    return AuthConfig.model_validate({"scheme": "messagebird-v1", "secrets": [SECRET]})


def signed(query: str) -> SignedRequest:
    message = b"\n".join([str(NOW).encode(),
                          urlencode(sorted(parse_qsl(query, keep_blank_values=True))).encode(),
                          hashlib.sha256(b"").digest()])
    signature = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest())
    return SignedRequest(method="GET", url=f"https://hooks.example/w?{query}", query=query,
                         headers={"messagebird-request-timestamp": str(NOW),
                                  "messagebird-signature": signature.decode()},
                         body=b"", now=NOW)


def read(query: str) -> object:
    """What v1 and the legacy reader make of a query: refused, or the fields read."""
    try:
        verify_messagebird_v1(signed(query), config())
    except AuthError:
        return "unauthorized"
    try:
        fields = _bird_legacy.form_fields(form_pairs(query_text(query.lstrip("?"))))
    except NormalizeError:
        return "unreadable"
    if "mediaurls" in fields:  # a list in any order: each one a media item
        fields["mediaurls"] = sorted(fields["mediaurls"])
    return fields


@pytest.mark.parametrize("seed", range(60))
def test_no_order_of_a_signed_query_changes_what_is_read(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        pairs = [rng.choice(NAMES) + b"=" + rng.choice(VALUES) for _ in range(rng.randrange(2, 6))]
        readings = set()
        accepted = 0
        for _ in range(6):
            rng.shuffle(pairs)
            query = b"&".join(pairs).decode("latin-1")  # as ingest hands the query on
            reading = read(query)
            readings.add(repr(sorted(reading.items())) if isinstance(reading, dict) else reading)
            accepted += isinstance(reading, dict)
        fields_read = {r for r in readings if r not in ("unauthorized", "unreadable")}
        assert len(fields_read) <= 1, (pairs, readings)


def test_a_query_sent_after_a_double_question_mark_is_read_only_in_birds_order() -> None:
    """A status URL registered ending in `?` gets Bird's query after a second one: its first
    field is read as `id`. Moved from the front (same signature), it would be a field `?id`."""
    assert read("?id=msg-1&status=delivered") == {"id": "msg-1", "status": "delivered"}
    assert read("status=delivered&?id=msg-1") == "unauthorized"
    assert read("?status=delivered&?id=msg-1") == "unauthorized"
