"""The 415 for a content type ingest refuses names every one it accepts (text/plain too)."""

from __future__ import annotations

import pytest

from ingest.normalizing import ACCEPTED_MEDIA_TYPES, normalized
from normalizers.base import WebhookRequest
from tests.fixtures import ACCOUNT, RAW_ID, RECEIVED_AT


def _request(content_type: str) -> WebhookRequest:
    return WebhookRequest(provider="infobip", account=ACCOUNT, body=b"{}",
                          received_at=RECEIVED_AT, raw_id=RAW_ID, content_type=content_type)


def test_the_refusal_names_each_accepted_type() -> None:
    _, failure = normalized(_request("application/pdf"))
    assert failure is not None
    status, error, reason = failure
    assert (status, error) == (415, "unsupported_media_type")
    assert reason.startswith("content type 'application/pdf' is not accepted; send ")
    for media_type in ACCEPTED_MEDIA_TYPES - {""}:
        assert media_type in reason
    assert "no content type" in reason


@pytest.mark.parametrize("media_type", sorted(ACCEPTED_MEDIA_TYPES))
def test_what_it_names_is_not_refused_for_its_type(media_type: str) -> None:
    _, failure = normalized(_request(media_type))
    assert failure is None or failure[0] != 415
