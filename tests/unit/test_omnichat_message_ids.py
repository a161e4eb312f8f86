"""Omnichat's reports match its sends by `messageId` alone: the id the sender reads from a send
answer must be the string ingest reads from a report carrying the same JSON value."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from consumers.outbound import infobip_omnichat
from normalizers.base import NormalizeError
from normalizers.fields import text_field


def _read(message_id: Any) -> str | None:
    answer = {"to": "user-key", "messageCount": 1, "messageId": message_id,
              "status": {"groupName": "PENDING", "name": "PENDING_ENROUTE"}}
    return infobip_omnichat.read_response(httpx.Response(200, json=answer)).provider_message_id


@pytest.mark.parametrize("message_id", ["om-1", 1215543, 1215543.0, 7.0, -7.0, 0.0,
                                        float(2**53 - 1)])
def test_the_sends_id_is_the_one_ingest_reads_from_its_reports(message_id: Any) -> None:
    assert _read(message_id) is not None
    assert _read(message_id) == text_field({"messageId": message_id}, "messageId")


@pytest.mark.parametrize("message_id", [1215543.5, True, False, float(2**53), 1e300])
def test_what_is_no_id_is_read_as_none(message_id: Any) -> None:
    assert _read(message_id) is None


def test_ingest_refuses_the_floats_the_sender_reads_as_no_id() -> None:
    # beyond 2**53 a float skips integers: neither side reads an id from it
    with pytest.raises(NormalizeError):
        text_field({"messageId": float(2**53)}, "messageId")
