"""One rule for every provider when a webhook leaves out who sent it or which message it is
about (docs/events.md, "Missing senders and ids"): the same missing fact gives the same
outcome whichever provider sent it.

* An inbound message without a sender is refused: it cannot be answered, opted out, or keyed
  to its conversation (its Kafka key would be `provider|account|`, one key for every
  sender-less message of the account).
* An inbound message without a recipient or without a message id is kept: the account answers
  it from its own sender, and the event id falls back to its content.
* A status or seen report is kept when it names the message by the provider's id or by the
  sender's own reference (the correlation id), and refused when it names it by neither:
  nobody could match it to a message sent.

Each case is a fixture (tests/fixtures/<provider>/) with keys taken out of its body, so the
payloads stay each provider's real shape.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from normalizers import NormalizeError, normalize
from normalizers.base import WebhookRequest
from tests.fixtures import ACCOUNT, RAW_ID, RECEIVED_AT, load_fixtures

_FIXTURES = {fixture.id: fixture for fixture in load_fixtures()}
NO_SENDER = "has no sender"
NAMES_NO_MESSAGE = "names no message"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    request: WebhookRequest
    error: str | None = None  # a fragment of the NormalizeError reason
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)  # of the first event


def _without(fixture_id: str, *keys: str) -> WebhookRequest:
    """The fixture's request with the dotted `keys` (list items by index) taken out."""
    fixture = _FIXTURES[fixture_id]
    body = orjson.loads(fixture.body())
    for key in keys:
        *parents, last = key.split(".")
        node = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
    return dataclasses.replace(fixture.request(), body=orjson.dumps(body))


def _json(provider: str, body: Any) -> WebhookRequest:
    return WebhookRequest(provider=provider, account=ACCOUNT, body=orjson.dumps(body),
                          received_at=RECEIVED_AT, raw_id=RAW_ID)


def _bird_legacy_get(query: str) -> WebhookRequest:
    return WebhookRequest(provider="bird", account=ACCOUNT, body=b"", received_at=RECEIVED_AT,
                          raw_id=RAW_ID, content_type="", query=query, method="GET")


def _bird_legacy_form(body: str) -> WebhookRequest:
    return WebhookRequest(provider="bird", account=ACCOUNT, body=body.encode(),
                          received_at=RECEIVED_AT, raw_id=RAW_ID,
                          content_type="application/x-www-form-urlencoded")


INBOUND_WITHOUT_SENDER = [
    Case("infobip-sms", _without("infobip/sms-inbound", "results.0.from"), NO_SENDER),
    Case("infobip-messages-api", _without("infobip/messages-mo-text-keyword",
                                          "results.0.sender"), NO_SENDER),
    Case("infobip-per-channel", _without("infobip/whatsapp-inbound-per-channel-location",
                                         "results.0.from"), NO_SENDER),
    Case("infobip-omnichat", _without("infobip-omnichat/inbound-text-documented",
                                      "results.0.from"), NO_SENDER),
    Case("bird-channels", _without("bird/channels_sms_inbound", "payload.sender"), NO_SENDER),
    Case("bird-platform", _without("bird/platform_sms_received_non_ascii", "data.from"),
         NO_SENDER),
    # MessageBird's inbound SMS is told apart by its `originator`: without it, no known shape.
    Case("bird-legacy", _bird_legacy_form("recipient=18005551515&body=hi&id=b6aa"),
         "not a Bird webhook"),
    Case("webex", _without("webex/mo-whatsapp-text-no-attachments", "waid"), NO_SENDER),
    Case("ubiqio", _without("ubiqio/inbound-mms-image", "fromNumber"), NO_SENDER),
]

INBOUND_WITHOUT_RECIPIENT = [
    Case("infobip", _without("infobip/sms-inbound", "results.0.to"),
         fields={"from": "+385916242493", "to": None}),
    Case("infobip-omnichat", _without("infobip-omnichat/inbound-text-documented",
                                      "results.0.to"), fields={"to": None}),
    Case("bird-channels", _without("bird/channels_whatsapp_inbound_image_reply",
                                   "payload.receiver"),
         fields={"from": "+31612345678", "to": None}),
    Case("bird-platform", _without("bird/platform_sms_received_non_ascii", "data.to"),
         fields={"from": "+38761234567", "to": None}),
    Case("webex", _without("webex/mo-sms", "da"), fields={"to": None}),
    Case("ubiqio", _without("ubiqio/inbound-sms", "toNumber"),
         fields={"from": "+38761999888", "to": None}),
]

INBOUND_WITHOUT_MESSAGE_ID = [
    Case("infobip", _without("infobip/sms-inbound", "results.0.messageId"),
         fields={"from": "+385916242493", "message_id": None}),
    Case("infobip-omnichat", _without("infobip-omnichat/inbound-unicode-snake-case",
                                      "results.0.message_id"), fields={"message_id": None}),
    Case("bird-channels", _without("bird/channels_sms_inbound", "payload.id"),
         fields={"from": "+31612345678", "message_id": None}),
    Case("bird-platform", _without("bird/platform_sms_received_non_ascii", "data.sms_id"),
         fields={"from": "+38761234567", "message_id": None}),
    Case("bird-legacy", _bird_legacy_form("originator=31612345678&recipient=18005551515&body=hi"),
         fields={"from": "+31612345678", "message_id": None}),
    Case("webex", _without("webex/mo-whatsapp-text-no-attachments", "tid"),
         fields={"from": "+38761555777", "message_id": None}),
    Case("ubiqio", _without("ubiqio/inbound-sms", "messageId"),
         fields={"from": "+38761999888", "message_id": None}),
]

STATUS_WITH_CORRELATION_ONLY = [
    Case("infobip", _without("infobip/sms-delivery-v3", "results.0.messageId"),
         fields={"message_id": None, "correlation_id": "callbackData"}),
    Case("infobip-omnichat", _without("infobip-omnichat/status-delivered",
                                      "results.0.messageId"),
         fields={"message_id": None, "correlation_id": "order-991"}),
    Case("bird-channels", _without("bird/channels_sms_outbound_sent", "payload.id"),
         fields={"message_id": None, "correlation_id": "order-43"}),
    Case("bird-platform", _without("bird/platform_sms_delivered", "data.sms_id"),
         fields={"message_id": None, "correlation_id": "order-42"}),
    Case("bird-legacy", _bird_legacy_get("reference=order-42&recipient=31612345678"
                                         "&status=delivered"),
         fields={"message_id": None, "correlation_id": "order-42"}),
    Case("webex", _without("webex/sms-submitted-correlationid",
                           "deliveryInfoNotification.transid"),
         fields={"message_id": None, "correlation_id": "order-2025-0042"}),
    Case("ubiqio", _without("ubiqio/status-delivered", "messageId"),
         fields={"message_id": None, "correlation_id": "invoice-7781"}),
]

STATUS_WITHOUT_ANY_ID = [
    Case("infobip", _without("infobip/sms-delivery-v3", "results.0.messageId",
                             "results.0.callbackData"), NAMES_NO_MESSAGE),
    Case("infobip-omnichat", _without("infobip-omnichat/status-delivered",
                                      "results.0.messageId", "results.0.callbackData"),
         NAMES_NO_MESSAGE),
    Case("bird-channels", _without("bird/channels_sms_outbound_sent", "payload.id",
                                   "payload.reference"), "neither 'id' nor 'reference'"),
    Case("bird-platform", _without("bird/platform_sms_delivered", "data.sms_id",
                                   "data.metadata"), NAMES_NO_MESSAGE),
    Case("bird-legacy", _bird_legacy_get("recipient=31612345678&status=delivered"),
         "neither 'id' nor 'reference'"),
    Case("webex", _without("webex/sms-delivered", "deliveryInfoNotification.transid"),
         NAMES_NO_MESSAGE),
    Case("ubiqio", _without("ubiqio/status-delivered", "messageId", "clientRef"),
         NAMES_NO_MESSAGE),
]

SEEN_WITHOUT_ANY_ID = [
    Case("infobip-messages-api", _without("infobip/messages-seen", "results.0.messageId",
                                          "results.0.callbackData"), NAMES_NO_MESSAGE),
    Case("infobip-per-channel", _without("infobip/whatsapp-seen-per-channel-unlabelled",
                                         "results.0.messageId"), NAMES_NO_MESSAGE),
    Case("infobip-omnichat", _without("infobip-omnichat/status-seen", "results.0.messageId"),
         NAMES_NO_MESSAGE),
    Case("bird-channels-interaction", _without("bird/channels_whatsapp_interaction_read",
                                               "payload.messageId",
                                               "payload.messageReference"), NAMES_NO_MESSAGE),
    Case("bird-platform", _without("bird/platform_whatsapp_read", "data.whatsapp_id",
                                   "data.metadata"), NAMES_NO_MESSAGE),
    Case("webex", _without("webex/whatsapp-read", "deliveryInfoNotification.transid"),
         NAMES_NO_MESSAGE),
    Case("ubiqio", _json("ubiqio", {"status": "read", "toNumber": "38761222333"}),
         NAMES_NO_MESSAGE),
]

SEEN_WITH_CORRELATION_ONLY = [
    Case("bird-channels-interaction", _without("bird/channels_whatsapp_interaction_read",
                                               "payload.messageId"),
         fields={"status": "seen", "message_id": None, "correlation_id": "order-42"}),
    Case("bird-platform", _without("bird/platform_whatsapp_read", "data.whatsapp_id"),
         fields={"status": "seen", "message_id": None, "correlation_id": "order-42"}),
]

TABLE = [
    *(("inbound-without-sender", case) for case in INBOUND_WITHOUT_SENDER),
    *(("inbound-without-recipient", case) for case in INBOUND_WITHOUT_RECIPIENT),
    *(("inbound-without-message-id", case) for case in INBOUND_WITHOUT_MESSAGE_ID),
    *(("status-with-correlation-only", case) for case in STATUS_WITH_CORRELATION_ONLY),
    *(("status-without-any-id", case) for case in STATUS_WITHOUT_ANY_ID),
    *(("seen-without-any-id", case) for case in SEEN_WITHOUT_ANY_ID),
    *(("seen-with-correlation-only", case) for case in SEEN_WITH_CORRELATION_ONLY),
]


@pytest.mark.parametrize(("rule", "case"), TABLE, ids=[f"{rule}-{case.id}" for rule, case in TABLE])
def test_missing_fact_gives_the_same_outcome_for_every_provider(rule: str, case: Case) -> None:
    if case.error is not None:
        with pytest.raises(NormalizeError) as caught:
            normalize(case.request)
        assert caught.value.__cause__ is None, f"the normalizer crashed: {caught.value.__cause__!r}"
        assert case.error in caught.value.reason
        return
    events = normalize(case.request)
    assert len(events) == 1
    data = events[0].to_dict()
    assert {key: data[key] for key in case.fields} == case.fields


def test_every_provider_is_in_each_rule() -> None:
    """A provider added later must say what it does with each missing fact."""
    providers = {fixture.provider for fixture in _FIXTURES.values()}
    for rule in {rule for rule, _ in TABLE} - {"seen-with-correlation-only"}:
        covered = {case.request.provider for name, case in TABLE if name == rule}
        assert covered == providers, rule
