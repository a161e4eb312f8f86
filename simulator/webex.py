"""Webex Connect Send Message API v1, simulated: `POST /resources/v1/messaging` and receipts.

Send: header `key: <service_key>`; body `{deliverychannel, destination: [{msisdn: [...]}],
channels: {<deliverychannel>: {senderid, text, type?, body?}}, correlationid?, callbackData?,
notifyurl?, notifyurlAuthId?}`; an SMS `type` is "1" to "4", and "3" (binary) needs `body`.
Like the real API it answers HTTP 200 even when it refuses: success is an array
`{"response": [{"code": "1001", "transid", "description": "Queued"}]}` (one item per msisdn),
errors an object `{"response": {"code": "7001", "description", "transid"}}` (7000 invalid JSON,
7001 authentication failed, 7002 service key missing, 7003 mandatory parameters missing,
7004 invalid parameters, also an SMS text over the documented 1024 characters). An injected
HTTP fault is that status on the wire, as a client meets it: a 400 with code 7004, a 429 with
code 7020, a 5xx as the gateway in front of Webex answers one (plain text). Webex's own
internal error, code 7006 in an HTTP 200, is the `internal_error_2xx` fault.

Receipts are `deliveryInfoNotification` objects, Submitted (7501) then Delivered (7500), then
Read (7502) on channels with read receipts; `correlationid` and `callbackData` are echoed and
`transid` is the message id. Inbound messages are the flat MO shapes (`oa`/`da`/`message` for
SMS, `waid` with `buttonPayload` for a WhatsApp button tap, `psid` for Messenger).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from normalizers.channels import channel as channel_name
from simulator.base import (
    Inbound,
    InboundNotSupported,
    OutboundKeys,
    Outgoing,
    ReceivedSend,
    Webhook,
    checked_config,
    decode_json,
    iso_ms,
    json_response,
    matching_accounts,
    new_id,
    obj,
    outbound_check,
    same_secret,
    send_route,
    text,
    timeline,
    webhook,
)
from switchboard.accounts import Account, Secret

NAME = "webex"
SEND_PATH = "/resources/v1/messaging"

READ_CHANNELS = frozenset({"whatsapp", "rcs", "messenger", "email", "in-app"})
_RECEIPTS = (("Submitted", "7501"), ("Delivered", "7500"))
_READ = ("Read", "7502")
# Switchboard channel -> (the `channel` label of an MO, the key naming the end user).
_INBOUND_LABELS = {"sms": ("SMS", "oa"), "whatsapp": ("WhatsApp", "waid"),
                   "messenger": ("Messenger", "psid"), "rcs": ("RCS", "oa")}
_BUTTON_CHANNELS = frozenset({"whatsapp", "messenger", "rcs"})
# `channels.sms.type` (seed 002): text (the default), flash, binary (hex in `body`), Unicode.
SMS_TYPES = frozenset({"1", "2", "3", "4"})
BINARY_TYPE = "3"
# Seed 002: "A maximum of 1024 characters can be supported" in `channels.sms.text`. Which code
# Webex answers a longer one with is not documented; 7004 (invalid parameters) is ours.
MAX_SMS_TEXT = 1024


class Outbound(OutboundKeys):
    """Webex's keys of `[accounts.<name>.outbound]`."""

    service_key: Secret
    sender_id: str
    channel: str = "sms"


routes = send_route(SEND_PATH)
outbound_problem = outbound_check(Outbound)


def authenticate(request: Request, accounts: Sequence[Account]) -> Account | Response:
    """The `key` header names the account; Webex answers HTTP 200 with an error body if not."""
    key = request.headers.get("key", "").strip()
    if not key:
        return _refused("7002", "Service Key Missing")
    known = matching_accounts(
        accounts, Outbound,
        lambda config: same_secret(config.service_key.get_secret_value(), key))
    if known:
        return known[0][0]
    return _refused("7001", "Authentication failed.")


def parse_send(request: Request, account: Account, body: bytes) -> list[Outgoing] | Response:
    config = checked_config(account, Outbound)
    try:
        payload = decode_json(body)
    except ValueError:
        return _refused("7000", "Invalid JSON")
    if not isinstance(payload, dict):
        return _refused("7000", "Invalid JSON")
    delivery_channel = text(payload.get("deliverychannel"))
    msisdns = _msisdns(payload.get("destination"))
    content = obj(obj(payload.get("channels")).get(delivery_channel or ""))
    if delivery_channel is None or not msisdns or not content:
        return _refused("7003", "Mandatory parameters missing")
    problem = _sms_problem(content, config) if delivery_channel.lower() == "sms" else None
    if problem is not None:
        return _refused(*problem)
    correlation = text(payload.get("correlationid")) or text(payload.get("callbackData"))
    return [Outgoing(
        message_id=new_id(), to=msisdn, channel=channel_name(delivery_channel),
        correlation_id=correlation,
        details={"delivery_channel": delivery_channel,
                 "correlationid": payload.get("correlationid") or "",
                 "callbackData": payload.get("callbackData") or ""},
        # Receipts carry credentials only from the authentication profile the request names
        # (notifyurlAuthId); the simulator stands for a profile with the account's own.
        status_url=text(payload.get("notifyurl")),
        status_url_signed=text(payload.get("notifyurlAuthId")) is not None,
    ) for msisdn in msisdns]


def accepted(messages: Sequence[Outgoing]) -> Response:
    return json_response({"response": [
        {"code": "1001", "transid": message.message_id, "description": "Queued"}
        for message in messages
    ]})


def rejected() -> Response:
    """Webex answers its refusals with HTTP 200 and an error code: 7007, the service inactive."""
    return _refused("7007", "Service inactive")


def answer_2xx(mode: str) -> Response | None:
    """Code 7006, Webex's internal error in an HTTP 200 (the `internal_error_2xx` fault): it
    may come after Webex queued the message. Its send answer carries no message status."""
    if mode != "internal_error_2xx":
        return None
    return _refused("7006", "Internal error occurred")


def failure(status: int) -> Response:
    """That HTTP status on the wire, as a client meets it: a 503 is retried, a 500 (which
    may come after the message was taken) is not; code 7006 in a 200 reads as the 500."""
    if status == 400:
        return _refused("7004", "Invalid parameters/Values", status)
    if status == 429:
        return _refused("7020", "You have reached the maximum transaction limit", status)
    return PlainTextResponse(HTTPStatus(status).phrase, status)


def status_webhooks(send: ReceivedSend, *, at: datetime, step: timedelta) -> list[Webhook]:
    message = send.message
    receipts = [*_RECEIPTS, _READ] if message.channel in READ_CHANNELS else list(_RECEIPTS)
    times = timeline(at, step, len(receipts))
    return [webhook(f"status:{status}", _receipt(message, status, code, when))
            for (status, code), when in zip(receipts, times, strict=False)]


def inbound_webhook(account: Account, inbound: Inbound, *, at: datetime) -> Webhook:
    config = checked_config(account, Outbound)
    channel = channel_name(config.channel)
    label, sender_key = _INBOUND_LABELS.get(channel, (config.channel, "oa"))
    stamp = iso_ms(at)
    payload: dict[str, Any] = {"channel": label, sender_key: inbound.sender,
                               "tid": inbound.message_id, "ts": stamp}
    if sender_key == "oa":
        payload.update(da=inbound.to or config.sender_id, message_source=label,
                       messageCount="1")
    else:
        payload["event"] = "MO"
    if inbound.postback is None:
        payload["message"] = inbound.text
    elif channel in _BUTTON_CHANNELS:
        payload.update(buttonPayload=inbound.postback, buttonText=inbound.text)
    else:
        raise InboundNotSupported(f"Webex {label} messages have no buttons to tap")
    return webhook("inbound", payload)


# --- helpers ---------------------------------------------------------------------------------


def _msisdns(destination: Any) -> list[str]:
    """Every msisdn of `destination: [{msisdn: [...]}]`; empty when the shape is wrong."""
    if not isinstance(destination, list):
        return []
    numbers: list[str] = []
    for item in destination:
        values = obj(item).get("msisdn")
        if not isinstance(values, list):
            return []
        numbers.extend(value for value in values if text(value))
    return numbers


def _sms_problem(content: dict[str, Any], config: Outbound) -> tuple[str, str] | None:
    if text(content.get("senderid")) is None or text(content.get("text")) is None:
        return "7003", "Mandatory parameters missing"
    kind = content.get("type", "1")
    if (content["senderid"] != config.sender_id or kind not in SMS_TYPES
            or len(content["text"]) > MAX_SMS_TEXT):
        return "7004", "Invalid parameters/Values"
    if kind == BINARY_TYPE and text(content.get("body")) is None:
        return "7003", "Mandatory parameters missing"
    return None


def _receipt(message: Outgoing, status: str, code: str, when: datetime) -> dict[str, Any]:
    info: dict[str, Any] = {
        "timeStamp": iso_ms(when), "Description": status, "code": code,
        "deliveryChannel": message.details["delivery_channel"], "additionalInfo": "",
        "destination": message.to, "destinationType": "msisdn", "deliveryStatus": status,
    }
    if status == "Delivered":
        info["messageCount"] = "1"  # Webex sends it only on Delivered and Failed
    return {"deliveryInfoNotification": {
        "deliveryInfo": info, "carrier": "", "subtid": "", "transid": message.message_id,
        "callbackData": message.details["callbackData"],
        "correlationid": message.details["correlationid"],
    }}


def _refused(code: str, description: str, status: int = 200) -> Response:
    """Webex v1 refuses with a `response` object (not the success array), in an HTTP 200
    unless an injected fault names the status."""
    return json_response({"response": {"code": code, "description": description,
                                       "transid": new_id()}}, status)
