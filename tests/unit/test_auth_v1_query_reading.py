"""MessageBird v1's check of a query field's repeats reads the names as Bird's legacy reader
does: the query's bytes as UTF-8 (WebhookRequest.query_pairs), not as Latin-1, which is how
ingest hands the raw query on. It compared the Latin-1 reading, so a name sent once as raw
UTF-8 bytes and once %-escaped was two fields to the check and one to the reader, which takes
the last: the order v1 does not sign chose the value read. No field Bird's reader reads has a
non-ASCII name (nor one that lower-cases to it but `k`, from the Kelvin sign), so nothing
could be swapped in; the check and the reader now simply agree."""

from __future__ import annotations

import pytest

from ingest.auth import AuthError, SignedRequest, verify
from ingest.signing import sign
from switchboard.accounts import AuthConfig

SECRET = "signing-key-123"
CONFIG = AuthConfig.model_validate({"scheme": "messagebird-v1", "secrets": [SECRET]})


def _v1(raw_query: bytes) -> SignedRequest:
    """A GET signed by MessageBird over this query, as ingest hands it on (Latin-1)."""
    query = raw_query.decode("latin-1")
    headers = sign("messagebird-v1", SECRET, url="", body=b"", query=query, now=1_700_000_000)
    return SignedRequest(method="GET", url="", query=query, headers=headers, body=b"",
                         now=1_700_000_000)


@pytest.mark.parametrize("raw_query", [
    # One name to the reader (`café`), raw UTF-8 and %-escaped: two values, order unsigned.
    b"id=m-1&caf\xc3\xa9=1&caf%C3%A9=2",
    # The Kelvin sign lower-cases to `k` as UTF-8 text; its bytes as Latin-1 do not.
    b"id=m-1&k=1&\xe2\x84\xaa=2",
    # A query given with its `?` (a URL with `??`): Bird's reader drops it, so `id` twice.
    b"?id=m-1&id=m-2",
], ids=["raw-and-escaped", "kelvin-sign", "leading-question-mark"])
def test_a_field_repeated_under_another_spelling_of_its_name_is_refused(
        raw_query: bytes) -> None:
    with pytest.raises(AuthError, match="more than once with different values"):
        verify(_v1(raw_query), CONFIG)


@pytest.mark.parametrize("raw_query", [
    b"id=m-1&caf\xc3\xa9=1&caf%C3%A9=1",  # the same value twice: nothing to choose
    b"id=m-1&caf\xc3\xa9=1&cafe=2",  # two fields
    # Not UTF-8: the reader refuses the whole query (a dead letter), so no value is chosen.
    b"id=m-1&caf\xe9=1&caf\xe9=2",
], ids=["same-value", "two-fields", "not-utf8"])
def test_a_query_read_one_way_is_authenticated(raw_query: bytes) -> None:
    assert verify(_v1(raw_query), CONFIG) == 0
