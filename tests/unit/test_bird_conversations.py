"""Bird's legacy Conversations API webhooks (family B): what the fixtures cannot show, the
answer Bird gets, which JSON bodies are family B, and the id a repeated report keeps."""

from __future__ import annotations

import orjson

from normalizers import bird
from normalizers.base import DEFAULT_ACK, WebhookRequest
from tests.fixtures import ACCOUNT, RAW_ID, RECEIVED_AT, load_fixtures


def _request(body: object, content_type: str = "application/json") -> WebhookRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return WebhookRequest(provider="bird", account=ACCOUNT, body=raw, received_at=RECEIVED_AT,
                          raw_id=RAW_ID, content_type=content_type)


def _fixture_body(name: str) -> dict[str, object]:
    [fixture] = [f for f in load_fixtures("bird") if f.name == name]
    body: dict[str, object] = fixture.spec["request"]["body"]
    return body


def test_a_conversations_webhook_is_answered_as_the_other_json_apis() -> None:
    # Any 2xx will do; the legacy SMS API's text `OK` is for its form posts and GETs.
    for name in ("conversations_whatsapp_inbound_text",
                 "conversations_conversation_created_ignored"):
        assert bird.acknowledge(_request(_fixture_body(name))) == DEFAULT_ACK
    legacy = _request(b"originator=31612345678&body=hi&id=1",
                      "application/x-www-form-urlencoded")
    assert bird.acknowledge(legacy).body == b"OK"


def test_a_legacy_json_body_with_a_type_and_a_text_message_stays_legacy() -> None:
    # Flow Builder forwards a short code's SMS as JSON: its `message` is the text.
    events = bird.normalize(_request({"originator": "31612345678", "shortcode": "1008",
                                      "mid": "mo-1", "message": "hi", "type": "sms"}))
    assert [(e.type, e.text, e.to) for e in events] == [("message.inbound", "hi", "1008")]


def test_message_updated_of_a_received_message_keeps_the_created_event_id() -> None:
    created = _fixture_body("conversations_whatsapp_inbound_text")
    updated = _fixture_body("conversations_whatsapp_inbound_message_updated")
    assert created["type"] == "message.created" and updated["type"] == "message.updated"
    [first] = bird.normalize(_request(created))
    [again] = bird.normalize(_request(updated))
    assert first.id == again.id and first.text == again.text


def test_each_status_of_a_sent_message_is_an_event_of_its_own() -> None:
    base = _fixture_body("conversations_whatsapp_outbound_read")
    message = base["message"]
    assert isinstance(message, dict)
    ids = {bird.normalize(_request({**base, "message": {**message, "status": name}}))[0].id
           for name in ("accepted", "sent", "delivered", "read")}
    assert len(ids) == 4
