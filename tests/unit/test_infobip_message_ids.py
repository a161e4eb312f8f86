"""Both Infobip clients read a send answer's `messageId` by one rule, the one ingest reads a
report's by (normalizers.fields.text_field): the Messages API's `messages[0].messageId` and
Omnichat's top-level one give the same id for the same JSON value."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from consumers.outbound import infobip, infobip_omnichat
from consumers.outbound.base import SendError
from normalizers.fields import text_field

_STATUS = {"groupName": "PENDING", "name": "PENDING_ENROUTE"}


def _messages_api(message_id: Any) -> str | None:
    answer = {"bulkId": "b-1", "messages": [{"messageId": message_id, "status": _STATUS}]}
    return infobip.read_response(httpx.Response(200, json=answer)).provider_message_id


def _omnichat(message_id: Any) -> str | None:
    answer = {"to": "user-key", "messageCount": 1, "messageId": message_id, "status": _STATUS}
    return infobip_omnichat.read_response(httpx.Response(200, json=answer)).provider_message_id


@pytest.mark.parametrize("message_id", ["ib-1", 1215543, 1215543.0, 7.0, -7.0, 0.0,
                                        float(2**53 - 1)])
def test_both_apis_read_the_id_ingest_reads(message_id: Any) -> None:
    ingest = text_field({"messageId": message_id}, "messageId")
    assert ingest is not None
    assert _messages_api(message_id) == ingest
    assert _omnichat(message_id) == ingest


@pytest.mark.parametrize("message_id", [1215543.5, True, float(2**53), 1e300])
def test_what_is_no_id_is_none_in_both(message_id: Any) -> None:
    assert infobip.message_id(message_id) is None
    assert _omnichat(message_id) is None
    with pytest.raises(SendError) as failed:  # the Messages API's acceptances all carry one
        _messages_api(message_id)
    assert (failed.value.code, failed.value.maybe_sent) == ("bad_response", True)
