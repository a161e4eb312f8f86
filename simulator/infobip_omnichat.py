"""Infobip OMNI Chat (legacy), simulated: the send API and its (partly inferred) webhooks.

Send: `POST /omnichat/1/applications/{applicationKey}/integrations/{integrationType}/message`
with HTTP Basic; body `{"to": <user key>, "message": {"type": TEXT|IMAGE|BUTTONS, ...}}`
(IMAGE needs `url`, BUTTONS 1-3 POSTBACK/URL buttons). The answer is `{to, messageCount,
messageId, status}` with PENDING_ENROUTE, errors `{"requestError": {"serviceException": ...}}`.

The send API has no correlation field, so reports carry one only when the request had a
top-level `callbackData` (not in the send document; echoed if present). Otherwise status
events correlate by `messageId` alone.

Webhook shapes are the ones normalizers/infobip_omnichat.py accepts (only the inbound text is
documented): a delivery report DELIVERED_TO_HANDSET, then a seen report; inbound messages as
`results[]` with `message {type TEXT | POSTBACK}`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from normalizers.channels import channel as channel_name
from simulator.base import (
    Inbound,
    OutboundKeys,
    Outgoing,
    ReceivedSend,
    Webhook,
    authorization,
    checked_config,
    decode_json,
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
from simulator.infobip import (
    DELIVERED_TO_HANDSET,
    NO_ERROR,
    PENDING_ENROUTE,
    REJECTED_NOT_ENOUGH_CREDITS,
    UNDELIVERED,
    infobip_time,
    request_error,
)
from simulator.infobip import failure as infobip_failure
from switchboard.accounts import Account, Secret

NAME = "infobip-omnichat"
SEND_PATH = "/omnichat/1/applications/{application_key}/integrations/{integration_type}/message"

MAX_BUTTONS = 3


class Outbound(OutboundKeys):
    """Infobip Omnichat's keys of `[accounts.<name>.outbound]`."""

    username: str
    password: Secret
    application_key: str
    integration_type: str = "FACEBOOK"


routes = send_route(SEND_PATH)
outbound_problem = outbound_check(Outbound)


def authenticate(request: Request, accounts: Sequence[Account]) -> Account | Response:
    """Basic credentials pick the accounts; the application key in the path picks one of them."""
    credentials = _basic(request)
    if credentials is None:
        return request_error(401, "UNAUTHORIZED", "Invalid login details")
    username, password = credentials
    known = matching_accounts(
        accounts, Outbound, lambda config: same_secret(config.username, username)
        and same_secret(config.password.get_secret_value(), password))
    if not known:
        return request_error(401, "UNAUTHORIZED", "Invalid login details")
    key = request.path_params.get("application_key", "")
    for account, config in known:
        if config.application_key == key:
            return account
    return request_error(403, "FORBIDDEN", f"Application {key} does not belong to this user")


def parse_send(request: Request, account: Account, body: bytes) -> list[Outgoing] | Response:
    config = checked_config(account, Outbound)
    integration = request.path_params.get("integration_type", "")
    if integration.upper() != config.integration_type.upper():
        return request_error(400, "BAD_REQUEST",
                             f"Integration {integration} is not set up for this application")
    try:
        payload = decode_json(body)
    except ValueError:
        return request_error(400, "BAD_REQUEST", "Bad request")
    problem = _problem_with(payload)
    if problem is not None:
        return request_error(400, "BAD_REQUEST", problem)
    return [Outgoing(
        message_id=new_id(),
        to=payload["to"],
        channel=channel_name(config.integration_type),
        correlation_id=text(payload.get("callbackData")),
        details={"integration_type": config.integration_type.upper(),
                 "application_key": config.application_key},
    )]


def accepted(messages: Sequence[Outgoing]) -> Response:
    message = messages[0]
    return json_response({"to": message.to, "messageCount": 1,
                          "messageId": message.message_id, "status": PENDING_ENROUTE})


def rejected() -> Response:
    """An HTTP 200 with a REJECTED status, as the Messages API answers one (same status object)."""
    return json_response({"messageCount": 1, "messageId": new_id(),
                          "status": REJECTED_NOT_ENOUGH_CREDITS})


def answer_2xx(mode: str) -> Response | None:
    """An HTTP 200 with a final UNDELIVERABLE or EXPIRED status, as the Messages API's."""
    status = UNDELIVERED.get(mode)
    if status is None:
        return None
    return json_response({"messageCount": 1, "messageId": new_id(), "status": status})


def failure(status: int) -> Response:
    """Infobip's gateway errors; a 400 is the legacy `requestError`, not the Messages API's."""
    if status == 400:
        return request_error(400, "BAD_REQUEST", "Bad request")
    return infobip_failure(status)


def status_webhooks(send: ReceivedSend, *, at: datetime, step: timedelta) -> list[Webhook]:
    message = send.message
    delivered_at, seen_at = timeline(at + step, step, 2)
    delivery: dict[str, Any] = {
        "messageId": message.message_id, "to": message.to,
        "integrationType": message.details["integration_type"],
        "sentAt": infobip_time(at), "doneAt": infobip_time(delivered_at), "messageCount": 1,
        "status": DELIVERED_TO_HANDSET, "error": NO_ERROR,
    }
    seen: dict[str, Any] = {
        "messageId": message.message_id, "from": message.details["application_key"],
        "to": message.to, "integrationType": message.details["integration_type"],
        "sentAt": infobip_time(at), "seenAt": infobip_time(seen_at),
    }
    if message.correlation_id is not None:
        delivery["callbackData"] = seen["callbackData"] = message.correlation_id
    return [webhook("status:DELIVERED_TO_HANDSET", {"results": [delivery]}),
            webhook("status:SEEN", {"results": [seen]})]


def inbound_webhook(account: Account, inbound: Inbound, *, at: datetime) -> Webhook:
    config = checked_config(account, Outbound)
    message: dict[str, Any] = {"type": "TEXT", "text": inbound.text}
    if inbound.postback is not None:
        message = {"type": "POSTBACK", "text": inbound.text, "payload": inbound.postback}
    report = {"from": inbound.sender, "to": inbound.to or config.application_key,
              "integrationType": config.integration_type.upper(),
              "receivedAt": infobip_time(at), "messageId": inbound.message_id,
              "message": message}
    return webhook("inbound", {"results": [report], "messageCount": 1,
                               "pendingMessageCount": 0})


# --- helpers ---------------------------------------------------------------------------------


def _basic(request: Request) -> tuple[str, str] | None:
    encoded = authorization(request, "Basic")
    if encoded is None:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _problem_with(payload: Any) -> str | None:
    """What is wrong with a send body, per the send document (None when valid)."""
    if not isinstance(payload, dict) or text(payload.get("to")) is None:
        return "'to' (the user key) is required"
    message = payload.get("message")
    if not isinstance(message, dict):
        return "'message' object is required"
    kind = message.get("type")
    if kind not in ("TEXT", "IMAGE", "BUTTONS"):
        return "message.type must be TEXT, IMAGE or BUTTONS"
    if text(message.get("text")) is None:
        return "message.text is required"
    if kind == "IMAGE" and text(message.get("url")) is None:
        return "message.url is required for IMAGE"
    if kind == "BUTTONS":
        return _buttons_problem(message.get("buttons"))
    return None


def _buttons_problem(buttons: Any) -> str | None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        return f"message.buttons must hold 1 to {MAX_BUTTONS} buttons"
    for index, button in enumerate(buttons):
        button = obj(button)
        kind = button.get("type")
        if kind == "POSTBACK" and text(button.get("payload")) is None:
            return f"buttons[{index}]: a POSTBACK button needs a payload"
        if kind == "URL" and text(button.get("url")) is None:
            return f"buttons[{index}]: a URL button needs a url"
        if kind not in ("POSTBACK", "URL"):
            return f"buttons[{index}].type must be POSTBACK or URL"
    return None

