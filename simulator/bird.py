"""Bird Channels API, simulated: `POST /workspaces/{ws}/channels/{ch}/messages` and its webhooks.

Send: `Authorization: AccessKey <access_key>`; body `{receiver: {contacts: [{identifierValue}]},
body: {type: text|image|file, ...} | template, reference?}`, at most 10 images. The answer is
HTTP 202 with the message (`id`, `status: accepted`, `reference` ...). Errors are `{code,
message}` objects (401 NotAuthenticated, 403 Forbidden, 422 InvalidPayload with `details`).
An image or file body on an SMS channel is refused (422, `details.body`) unless the account's
outbound table says its number is MMS-capable (`mms = true`): seed 001 gives media only to SMS
channels with such numbers. How Bird itself refuses it is not documented; a 422 is ours.

Webhooks are Channels API events `{"service": "channels", "event": "<platform>.outbound",
"payload": <message>}` for accepted, sent and delivered, and for WhatsApp, RCS, Messenger and
Instagram a `<platform>.interaction` of type `read`. `reference` (and `messageReference` on
interactions) carries the correlation id. Inbound messages are `<platform>.inbound` events; the
Channels API has no button postback in them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from normalizers.channels import channel as channel_name
from simulator.base import (
    Inbound,
    InboundNotSupported,
    OutboundKeys,
    Outgoing,
    ReceivedSend,
    Webhook,
    authorization,
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

NAME = "bird"
SEND_PATH = "/workspaces/{workspace_id}/channels/{channel_id}/messages"

BODY_TYPES = ("text", "image", "file")
MAX_IMAGES = 10  # seed 001: "up to an array of 10 media URLs"
LIFECYCLE = ("accepted", "sent", "delivered")
READ_PLATFORMS = frozenset({"whatsapp", "rcs", "facebook", "instagram"})
# Switchboard channel names -> Bird platform ids, where they differ.
_PLATFORMS = {"messenger": "facebook"}
_CONNECTOR_NAMESPACE = uuid.UUID("0b6a9f4e-8d51-4c0e-9a57-3c1d2e4f5a60")


class Outbound(OutboundKeys):
    """Bird's keys of `[accounts.<name>.outbound]`."""

    access_key: Secret
    workspace_id: str
    channel_id: str
    channel: str = "sms"
    mms: bool = False  # the SMS channel's number is MMS-capable: it carries media

    @property
    def platform(self) -> str:
        return _PLATFORMS.get(self.channel.lower(), self.channel.lower())


routes = send_route(SEND_PATH)
outbound_problem = outbound_check(Outbound)


def authenticate(request: Request, accounts: Sequence[Account]) -> Account | Response:
    """The access key picks the accounts; the workspace and channel in the path pick one."""
    key = authorization(request, "AccessKey")
    if key is None:
        return _error(401, "NotAuthenticated", "Missing or invalid access key")
    known = matching_accounts(
        accounts, Outbound,
        lambda config: same_secret(config.access_key.get_secret_value(), key))
    if not known:
        return _error(401, "NotAuthenticated", "Missing or invalid access key")
    workspace = request.path_params.get("workspace_id")
    channel = request.path_params.get("channel_id")
    for account, config in known:
        if config.workspace_id == workspace and config.channel_id == channel:
            return account
    return _error(403, "Forbidden", "The access key has no access to this channel")


def parse_send(request: Request, account: Account, body: bytes) -> list[Outgoing] | Response:
    config = checked_config(account, Outbound)
    try:
        payload = decode_json(body)
    except ValueError as exc:
        return _invalid({"body": [str(exc)]})
    details = _details(payload) or _media_problem(payload, config)
    if details:
        return _invalid(details)
    contact = payload["receiver"]["contacts"][0]
    return [Outgoing(
        message_id=new_id(),
        to=contact["identifierValue"],
        channel=channel_name(config.platform),
        correlation_id=text(payload.get("reference")),
        details={"channel_id": config.channel_id, "platform": config.platform,
                 "connector_id": _connector_id(config.channel_id),
                 "identifier_key": text(contact.get("identifierKey")) or "phonenumber",
                 "body": payload.get("body"), "created_at": iso_ms(datetime.now(UTC))},
    )]


def accepted(messages: Sequence[Outgoing]) -> Response:
    message = messages[0]
    payload = _message(message, "accepted", message.details["created_at"])
    return json_response({**payload, "body": message.details["body"]}, 202)


def rejected() -> Response:
    """A 202 whose message has status `rejected` and a failure: Bird did not take it (the send
    API's status enum; `failure.source.name` as Bird's failure sources name them)."""
    return json_response({"id": new_id(), "status": "rejected", "direction": "outgoing",
                          "failure": {"description": "Insufficient balance",
                                      "source": {"name": "accounting"}}}, 202)


def answer_2xx(mode: str) -> None:
    """The Infobip status groups and Webex's internal error in a 2xx have no Bird counterpart
    the simulator answers: its `rejected` is Bird's refusal in a 2xx."""
    return None


def failure(status: int) -> Response:
    names = {400: "InvalidPayload", 429: "TooManyRequests", 503: "ServiceUnavailable"}
    reasons = {400: "The request is invalid", 429: "Too many requests, slow down",
               503: "Service temporarily unavailable"}
    return _error(status, names.get(status, "InternalServerError"),
                  reasons.get(status, "An internal error occurred"))


def status_webhooks(send: ReceivedSend, *, at: datetime, step: timedelta) -> list[Webhook]:
    message = send.message
    platform = message.details["platform"]
    read = platform in READ_PLATFORMS
    times = timeline(at, step, len(LIFECYCLE) + (1 if read else 0))
    hooks = [webhook(f"status:{status}",
                     {"service": "channels", "event": f"{platform}.outbound",
                      "payload": _message(message, status, iso_ms(when))})
             for status, when in zip(LIFECYCLE, times, strict=False)]
    if read:
        hooks.append(webhook("status:read", _read_interaction(message, times[-1])))
    return hooks


def inbound_webhook(account: Account, inbound: Inbound, *, at: datetime) -> Webhook:
    config = checked_config(account, Outbound)
    if inbound.postback is not None:
        raise InboundNotSupported("Bird Channels inbound messages carry no button postback")
    connector: dict[str, Any] = {"id": _connector_id(config.channel_id)}
    if inbound.to is not None:
        connector["identifierValue"] = inbound.to
    stamp = iso_ms(at)
    payload = {
        "id": inbound.message_id,
        "channelId": config.channel_id,
        "sender": {"contact": {"id": str(uuid.uuid5(_CONNECTOR_NAMESPACE, inbound.sender)),
                               "identifierKey": "phonenumber",
                               "identifierValue": inbound.sender}},
        "receiver": {"connector": connector},
        "body": {"type": "text", "text": {"text": inbound.text}},
        "status": "delivered", "direction": "incoming",
        "lastStatusAt": stamp, "createdAt": stamp, "updatedAt": stamp,
    }
    return webhook("inbound", {"service": "channels", "event": f"{config.platform}.inbound",
                               "payload": payload})


# --- send parsing ----------------------------------------------------------------------------


def _details(payload: Any) -> dict[str, list[str]]:
    """Bird's 422 `details`: field -> problems (empty when the body is valid)."""
    if not isinstance(payload, dict):
        return {"body": ["must be a JSON object"]}
    problems: dict[str, list[str]] = {}
    contacts = obj(payload.get("receiver")).get("contacts")
    if not isinstance(contacts, list) or not contacts or not all(
            isinstance(c, dict) and text(c.get("identifierValue")) for c in contacts):
        problems["receiver.contacts"] = ["must hold at least one contact with identifierValue"]
    body, template = payload.get("body"), payload.get("template")
    if template is None:
        problem = _body_problem(body)
        if problem is not None:
            problems["body"] = [problem]
    elif body is not None:
        problems["body"] = ["must not be set together with template"]
    reference = payload.get("reference")
    if reference is not None and not isinstance(reference, str):
        problems["reference"] = ["must be a string"]
    return problems


def _body_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "is required (or a template)"
    kind = body.get("type")
    if kind not in BODY_TYPES:
        return f"type must be one of {', '.join(BODY_TYPES)}"
    content = obj(body.get(kind))
    if kind == "text" and text(content.get("text")) is None:
        return "text.text is required"
    items = content.get("images" if kind == "image" else "files")
    if kind != "text" and not (isinstance(items, list) and items and all(
            isinstance(item, dict) and text(item.get("mediaUrl")) for item in items)):
        return f"{kind} needs at least one item with mediaUrl"
    if kind == "image" and isinstance(items, list) and len(items) > MAX_IMAGES:
        return f"image.images holds at most {MAX_IMAGES} items"
    # Bird's schema requires each file's contentType (every file example in seed 001 has one).
    if kind == "file" and isinstance(items, list) and not all(
            text(item.get("contentType")) for item in items):
        return "file.files items need contentType"
    return None


def _media_problem(payload: dict[str, Any], config: Outbound) -> dict[str, list[str]]:
    """Seed 001: "SMS channels that are installed with MMS capable numbers ... also support
    media messaging"; others send text only."""
    kind = obj(payload.get("body")).get("type")
    if kind in ("image", "file") and config.platform == "sms" and not config.mms:
        return {"body": [f"type {kind} needs an MMS-capable number; this SMS channel's is not"]}
    return {}


# --- bodies ----------------------------------------------------------------------------------


def _message(message: Outgoing, status: str, stamp: str) -> dict[str, Any]:
    """The Channels API message object, as the send answer and outbound events carry it."""
    result: dict[str, Any] = {
        "id": message.message_id,
        "channelId": message.details["channel_id"],
        "sender": {"connector": {"id": message.details["connector_id"]}},
        "receiver": {"contacts": [{"id": _contact_id(message.to),
                                   "identifierKey": message.details["identifier_key"],
                                   "identifierValue": message.to}]},
        "status": status,
        "direction": "outgoing",
        "lastStatusAt": stamp,
        "createdAt": message.details["created_at"],
        "updatedAt": stamp,
    }
    if message.correlation_id is not None:
        result["reference"] = message.correlation_id
    return result


def _read_interaction(message: Outgoing, when: datetime) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": new_id(),
        "messageId": message.message_id,
        "channelId": message.details["channel_id"],
        "platformId": message.details["platform"],
        "type": "read",
        "messagePartsCount": 1,
        "receiver": {"contacts": [{"id": _contact_id(message.to),
                                   "identifierKey": message.details["identifier_key"],
                                   "identifierValue": message.to}]},
        "createdAt": iso_ms(when),
    }
    if message.correlation_id is not None:
        payload["messageReference"] = message.correlation_id
    return {"service": "channels", "event": f"{message.details['platform']}.interaction",
            "payload": payload}


def _connector_id(channel_id: str) -> str:
    return str(uuid.uuid5(_CONNECTOR_NAMESPACE, f"connector:{channel_id}"))


def _contact_id(identifier: str) -> str:
    return str(uuid.uuid5(_CONNECTOR_NAMESPACE, identifier))


def _error(status: int, code: str, message: str) -> Response:
    return json_response({"code": code, "message": message}, status)


def _invalid(details: dict[str, list[str]]) -> Response:
    return json_response({"code": "InvalidPayload",
                          "message": "The request payload is invalid", "details": details}, 422)
