"""Infobip Messages API, simulated: `POST /messages-api/1/messages` and its webhooks.

Send: `Authorization: App <api_key>`; body `{"messages": [{channel, sender, destinations[{to,
messageId?}], content{body{type, text}, buttons?[{type, text, postbackData}]},
webhooks{delivery{url, intermediateReport}, seen{url}, callbackData}}]}`; what seed 003 marks
required is checked (a 400 naming the violations, as Infobip answers). The answer is
`{bulkId, messages[{messageId, status, destination}]}` with status MESSAGE_ACCEPTED. Webhooks
use the Messages API report shapes (`event` DELIVERY, SEEN, MO); `callbackData` is echoed in
delivery and seen reports, as Infobip documents.
Delivery reports of one account are gathered for up to 250 ms and go together, up to 100 per
`results` array, as Infobip's default `maxBucketSize` allows.

Infobip sends intermediate delivery reports only when the message asked for them
(`webhooks.delivery.intermediateReport: true`): then MESSAGE_ACCEPTED and PENDING_ENROUTE come
before DELIVERED_TO_HANDSET. Seen reports exist only for RCS, Viber and WhatsApp, and only when
`webhooks.seen.url` was given or the message names no URL at all (the account's subscription,
simulated by posting to ingest with the account's credentials, then reports both kinds).
Reports to a URL the message named carry no credentials: Infobip documents no signing for them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from consumers.outbound.infobip import infobip_channel
from normalizers.channels import channel as channel_name
from simulator.base import (
    Bucket,
    Inbound,
    InboundNotSupported,
    OutboundKeys,
    Outgoing,
    ReceivedSend,
    Webhook,
    authorization,
    checked_config,
    decode_json,
    json_response,
    matching_accounts,
    obj,
    outbound_check,
    same_secret,
    send_route,
    text,
    timeline,
    webhook,
)
from switchboard.accounts import Account, Secret

NAME = "infobip"
SEND_PATH = "/messages-api/1/messages"

CHANNELS = frozenset({"SMS", "MMS", "WHATSAPP", "VIBER_BM", "VIBER_BOT", "RCS", "APPLE_MB",
                      "INSTAGRAM_DM", "LINE_ON", "MESSENGER"})
SEEN_CHANNELS = frozenset({"RCS", "VIBER_BM", "VIBER_BOT", "WHATSAPP"})
_BUTTONLESS = frozenset({"SMS", "MMS"})

# Infobip status and error objects (infobip_omnichat reports the same ones).
_ACCEPTED = {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "MESSAGE_ACCEPTED",
             "description": "Message sent to next instance"}
PENDING_ENROUTE = {"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE",
                   "description": "Message sent to next instance"}
DELIVERED_TO_HANDSET = {"groupId": 3, "groupName": "DELIVERED", "id": 5,
                        "name": "DELIVERED_TO_HANDSET",
                        "description": "Message delivered to handset"}
NO_ERROR = {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
            "description": "No Error", "permanent": False}
# A status of the REJECTED group, as a send's answer may carry it in an HTTP 200.
REJECTED_NOT_ENOUGH_CREDITS = {"groupId": 5, "groupName": "REJECTED", "id": 12,
                               "name": "REJECTED_NOT_ENOUGH_CREDITS",
                               "description": "Not enough credits"}
# Statuses of the other final groups a send's answer may carry, by the fault that answers them.
UNDELIVERED = {
    "undeliverable": {"groupId": 2, "groupName": "UNDELIVERABLE", "id": 31,
                      "name": "UNDELIVERABLE_NOT_SENT", "description": "Message not sent"},
    "expired": {"groupId": 4, "groupName": "EXPIRED", "id": 15, "name": "EXPIRED_EXPIRED",
                "description": "Message expired"},
}


class Outbound(OutboundKeys):
    """Infobip's keys of `[accounts.<name>.outbound]`."""

    api_key: Secret
    sender: str
    channel: str = "sms"


routes = send_route(SEND_PATH)
outbound_problem = outbound_check(Outbound)


def authenticate(request: Request, accounts: Sequence[Account]) -> Account | Response:
    key = authorization(request, "App")
    known = [] if key is None else matching_accounts(
        accounts, Outbound, lambda config: same_secret(config.api_key.get_secret_value(), key))
    if known:
        return known[0][0]
    return request_error(401, "UNAUTHORIZED", "Invalid login details")


def parse_send(request: Request, account: Account, body: bytes) -> list[Outgoing] | Response:
    try:
        payload = decode_json(body)
    except ValueError as exc:
        return _api_error([("body", str(exc))])
    violations = _violations(payload)
    if violations:
        return _api_error(violations)
    bulk_id = text(obj(obj(payload.get("options")).get("schedule")).get("bulkId")) or _infobip_id()
    return [_outgoing(message, destination, bulk_id)
            for message in payload["messages"] for destination in message["destinations"]]


def accepted(messages: Sequence[Outgoing]) -> Response:
    return json_response({
        "bulkId": messages[0].details["bulk_id"],
        "messages": [{"messageId": message.message_id, "status": _ACCEPTED,
                      "destination": message.to} for message in messages],
    })


def rejected() -> Response:
    """An HTTP 200 whose message has a REJECTED status: Infobip did not take it."""
    return json_response({"bulkId": _infobip_id(), "messages": [
        {"messageId": _infobip_id(), "status": REJECTED_NOT_ENOUGH_CREDITS}]})


def answer_2xx(mode: str) -> Response | None:
    """An HTTP 200 whose message has a final UNDELIVERABLE or EXPIRED status (those faults)."""
    status = UNDELIVERED.get(mode)
    if status is None:
        return None
    return json_response({"bulkId": _infobip_id(), "messages": [
        {"messageId": _infobip_id(), "status": status}]})


def failure(status: int) -> Response:
    if status == 400:
        return _api_error([("messages", "request cannot be processed")])
    if status == 429:
        return request_error(429, "TOO_MANY_REQUESTS", "Too many requests")
    return request_error(status, "GENERAL_ERROR",
                         "Something went wrong. Please contact support.")


def status_webhooks(send: ReceivedSend, *, at: datetime, step: timedelta) -> list[Webhook]:
    message = send.message
    statuses = [_ACCEPTED, PENDING_ENROUTE, DELIVERED_TO_HANDSET] \
        if message.details["intermediate"] else [DELIVERED_TO_HANDSET]
    seen = message.details["channel"] in SEEN_CHANNELS and message.details["seen"]
    times = timeline(at, step, len(statuses) + (1 if seen else 0))
    hooks = [webhook(f"status:{status['name']}",
                     {"results": [_delivery_report(message, status, sent_at=at, done_at=when)]},
                     DELIVERY_BUCKET)
             for status, when in zip(statuses, times, strict=False)]
    if seen:
        hooks.append(webhook("status:SEEN",
                             {"results": [_seen_report(message, sent_at=at, seen_at=times[-1])]}))
    return hooks


def inbound_webhook(account: Account, inbound: Inbound, *, at: datetime) -> Webhook:
    config = checked_config(account, Outbound)
    channel = infobip_channel(None, config.channel)  # as the account's client names it
    if inbound.postback is not None and channel in _BUTTONLESS:
        raise InboundNotSupported(f"Infobip {channel} messages have no buttons to tap")
    part: dict[str, Any] = {"type": "TEXT", "text": inbound.text}
    if inbound.postback is not None:
        part = {"type": "BUTTON_REPLY", "text": inbound.text, "payload": inbound.postback,
                "id": "1"}
    report = {"event": "MO", "channel": channel, "sender": inbound.sender,
              "destination": inbound.to or config.sender, "content": [part],
              "receivedAt": infobip_time(at), "messageId": inbound.message_id,
              "messageCount": 1}
    return webhook("inbound", {"results": [report]})


# --- send parsing ----------------------------------------------------------------------------


def _violations(payload: Any) -> list[tuple[str, str]]:
    """What the documented schema requires and the request lacks (empty when valid)."""
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list) or not messages:
        return [("messages", "must be a non-empty array")]
    found: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        found.extend(_message_violations(f"messages[{index}]", message))
    return found


def _message_violations(where: str, message: Any) -> list[tuple[str, str]]:
    if not isinstance(message, dict):
        return [(where, "must be an object")]
    found: list[tuple[str, str]] = []
    if message.get("channel") not in CHANNELS:
        found.append((f"{where}.channel", f"must be one of {', '.join(sorted(CHANNELS))}"))
    if text(message.get("sender")) is None:
        found.append((f"{where}.sender", "must not be blank"))
    destinations = message.get("destinations")
    if not isinstance(destinations, list) or not destinations or not all(
            isinstance(item, dict) and text(item.get("to")) for item in destinations):
        found.append((f"{where}.destinations", "must be a non-empty array of {to}"))
    found.extend(_content_violations(f"{where}.content", obj(message.get("content"))))
    callback = obj(message.get("webhooks")).get("callbackData")
    if callback is not None and (not isinstance(callback, str) or len(callback) > 4000):
        found.append((f"{where}.webhooks.callbackData", "must be a string of 0..4000 chars"))
    return found


def _content_violations(where: str, content: dict[str, Any]) -> list[tuple[str, str]]:
    """Seed 003: the body's `type`, a TEXT body's `text`, and each button's `type`, `text`
    and `postbackData` are required."""
    found: list[tuple[str, str]] = []
    body = obj(content.get("body"))
    kind = text(body.get("type"))
    if kind is None:
        found.append((f"{where}.body.type", "must not be blank"))
    elif kind == "TEXT" and text(body.get("text")) is None:
        found.append((f"{where}.body.text", "must not be blank"))
    buttons = content.get("buttons")
    if buttons is None:
        return found
    if not isinstance(buttons, list):
        return [*found, (f"{where}.buttons", "must be an array")]
    for index, button in enumerate(buttons):
        for name in ("type", "text", "postbackData"):
            if text(obj(button).get(name)) is None:
                found.append((f"{where}.buttons[{index}].{name}", "must not be blank"))
    return found


def _outgoing(message: dict[str, Any], destination: dict[str, Any], bulk_id: str) -> Outgoing:
    hooks = obj(message.get("webhooks"))
    delivery_url = text(obj(hooks.get("delivery")).get("url"))
    seen_url = text(obj(hooks.get("seen")).get("url"))
    return Outgoing(
        message_id=text(destination.get("messageId")) or _infobip_id(),
        to=destination["to"],
        channel=channel_name(message["channel"]),
        correlation_id=text(hooks.get("callbackData")),
        details={
            "channel": message["channel"],
            "sender": message["sender"],
            "bulk_id": bulk_id,
            "intermediate": obj(hooks.get("delivery")).get("intermediateReport") is True,
            "seen": seen_url is not None or delivery_url is None,
        },
        # Seen reports go to `seen.url`, which Switchboard sets to the delivery URL: one URL
        # stands for both here.
        status_url=delivery_url or seen_url,
    )


# --- webhook bodies --------------------------------------------------------------------------


def merge_results(bodies: Sequence[bytes]) -> bytes:
    """One `{"results": [...]}` body carrying the reports of several."""
    return orjson.dumps({"results": [report for body in bodies
                                     for report in orjson.loads(body)["results"]]})


# "The default number of delivery reports in a single request is 100" (maxBucketSize). How
# long Infobip lets a bucket fill is not documented; a quarter second is our assumption.
DELIVERY_BUCKET = Bucket("infobip-delivery", max_reports=100, max_wait_s=0.25,
                         merge=merge_results)


def _delivery_report(message: Outgoing, status: dict[str, Any], *, sent_at: datetime,
                     done_at: datetime) -> dict[str, Any]:
    report: dict[str, Any] = {
        "event": "DELIVERY", "channel": message.details["channel"],
        "sender": message.details["sender"],
        "destination": message.to, "sentAt": infobip_time(sent_at),
        "doneAt": infobip_time(done_at), "bulkId": message.details["bulk_id"],
        "messageId": message.message_id, "messageCount": 1, "status": status,
        "error": NO_ERROR,
    }
    if message.correlation_id is not None:
        report["callbackData"] = message.correlation_id
    return report


def _seen_report(message: Outgoing, *, sent_at: datetime, seen_at: datetime) -> dict[str, Any]:
    report: dict[str, Any] = {
        "event": "SEEN", "channel": message.details["channel"],
        "sender": message.details["sender"],
        "destination": message.to, "sentAt": infobip_time(sent_at),
        "seenAt": infobip_time(seen_at), "bulkId": message.details["bulk_id"],
        "messageId": message.message_id,
    }
    if message.correlation_id is not None:
        report["callbackData"] = message.correlation_id
    return report


def infobip_time(moment: datetime) -> str:
    """Infobip's `yyyy-MM-dd'T'HH:mm:ss.SSSZ`: milliseconds and a colon-less offset."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _infobip_id() -> str:
    """Infobip ids look like `1688025180464000014`: digits, not UUIDs."""
    return str(random.randrange(10**18, 10**19))


# --- error answers ---------------------------------------------------------------------------


def request_error(status: int, message_id: str, reason: str) -> Response:
    """The gateway-level error every Infobip API answers with (auth, throttling, 5xx)."""
    return json_response({"requestError": {"serviceException": {"messageId": message_id,
                                                                "text": reason}}}, status)


def _api_error(violations: list[tuple[str, str]]) -> Response:
    """The Messages API's 400: errorCode E400 with the violated properties."""
    return json_response({
        "errorCode": "E400",
        "description": "Request cannot be processed.",
        "action": "Check the syntax, violations and adjust the request.",
        "violations": [{"property": prop, "violation": why} for prop, why in violations],
        "resources": [],
    }, 400)
