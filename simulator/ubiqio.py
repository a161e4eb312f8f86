"""Ubiqio Inbound Message API, simulated: the JWT token, `POST /mvapi/message/send`, webhooks.

Token: `POST /mvapi/auth/token {clientId, clientSecret}` -> `{"token": <JWT>}`, or HTTP 401
`{"error": "Check your account key and secret"}`. The JWT (HS256, one hour) is keyed by the
account's client secret, so the send endpoint can verify it without shared state.

Send: `Authorization: Bearer <token>`; body `{accountId, toNumber, message, templateId,
channel: SMS|MMS, priority?, imageUrl? (MMS), caption?, clientRef?, statusCallback?}`. The
public document shows no success or error bodies; the simulator answers 200 `{"messageId",
"clientRef", "status": "ACCEPTED"}`, 400 `{"error": <reason>}` and 401 `{"error": ...}`, and,
for the `rejected` fault, 200 `{"success": false, "message": <reason>}` (a shape of our own: the
refusal in a 2xx the sender reads as one).

Webhooks (not publicly documented; the shapes normalizers/ubiqio.py reads): status reports
`{messageId, accountId, clientRef, toNumber, channel, status: ACCEPTED|SENT|DELIVERED,
timestamp}` and inbound messages `{messageId, accountId, fromNumber, toNumber?, message,
channel, receivedAt}`. SMS and MMS have no buttons, so no postbacks.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from simulator.base import (
    Inbound,
    InboundNotSupported,
    OutboundKeys,
    Outgoing,
    ReceivedSend,
    SendEndpoint,
    Webhook,
    authorization,
    checked_config,
    decode_json,
    iso_ms,
    json_response,
    matching_accounts,
    new_id,
    outbound_check,
    same_secret,
    text,
    timeline,
    webhook,
)
from switchboard.accounts import Account, Secret

NAME = "ubiqio"
TOKEN_PATH = "/mvapi/auth/token"  # noqa: S105 - a path, not a password
SEND_PATH = "/mvapi/message/send"

TOKEN_TTL_S = 3600
CHANNELS = ("SMS", "MMS")
LIFECYCLE = ("ACCEPTED", "SENT", "DELIVERED")
_ISSUER = "ubiqio-simulator"
_REQUIRED = ("accountId", "toNumber", "templateId", "channel")


class Outbound(OutboundKeys):
    """Ubiqio's keys of `[accounts.<name>.outbound]`."""

    client_id: str
    client_secret: Secret
    account_id: str
    template_id: str
    priority: int = 1
    channel: str = "sms"


outbound_problem = outbound_check(Outbound)


def routes(send: SendEndpoint, accounts: Sequence[Account]) -> list[BaseRoute]:
    async def token(request: Request) -> Response:
        return issue_token(await request.body(), accounts)

    return [Route(TOKEN_PATH, token, methods=["POST"]),
            Route(SEND_PATH, send, methods=["POST"])]


def issue_token(body: bytes, accounts: Sequence[Account], now: float | None = None) -> Response:
    """The token endpoint: a JWT for the account whose clientId and clientSecret match."""
    try:
        payload = decode_json(body)
    except ValueError as exc:
        return _error(400, str(exc))
    if not isinstance(payload, dict) or not text(payload.get("clientId")) \
            or not text(payload.get("clientSecret")):
        return _error(400, "clientId and clientSecret are required")
    known = matching_accounts(
        accounts, Outbound, lambda config: same_secret(config.client_id, payload["clientId"])
        and same_secret(config.client_secret.get_secret_value(), payload["clientSecret"]))
    if known:
        return json_response({"token": _token(known[0][1], now)})
    return _error(401, "Check your account key and secret")


def authenticate(request: Request, accounts: Sequence[Account]) -> Account | Response:
    """The account whose client id the Bearer token names, if the token is valid and current."""
    token = authorization(request, "Bearer")
    if token is None:
        return _error(401, "Bearer token was missing or invalid")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return _error(401, "Bearer token was missing or invalid")
    known = matching_accounts(accounts, Outbound,
                              lambda config: config.client_id == claims.get("sub"))
    if known:
        account, config = known[0]
        try:
            jwt.decode(token, _key(config), algorithms=["HS256"], issuer=_ISSUER)
        except jwt.InvalidTokenError:
            pass
        else:
            return account
    return _error(401, "Bearer token was missing or invalid")


def parse_send(request: Request, account: Account, body: bytes) -> list[Outgoing] | Response:
    config = checked_config(account, Outbound)
    try:
        payload = decode_json(body)
    except ValueError as exc:
        return _error(400, str(exc))
    problem = _problem_with(payload, config)
    if problem is not None:
        return _error(400, problem)
    return [Outgoing(
        message_id=new_id(),
        to=payload["toNumber"],
        channel=payload["channel"].lower(),
        correlation_id=text(payload.get("clientRef")),
        details={"account_id": config.account_id, "channel": payload["channel"]},
        status_url=text(payload.get("statusCallback")),  # Ubiqio documents no webhook auth
    )]


def accepted(messages: Sequence[Outgoing]) -> Response:
    message = messages[0]
    return json_response({"messageId": message.message_id,
                          "clientRef": message.correlation_id, "status": "ACCEPTED"})


def rejected() -> Response:
    return json_response({"success": False, "message": "Insufficient balance"})


def answer_2xx(mode: str) -> None:
    """Ubiqio documents no status or error code in its send answer (none of its bodies are
    shown)."""
    return None


def failure(status: int) -> Response:
    reasons = {400: "Invalid parameters", 429: "Too many requests",
               503: "Service unavailable"}
    return _error(status, reasons.get(status, "Unexpected error during processing"))


def status_webhooks(send: ReceivedSend, *, at: datetime, step: timedelta) -> list[Webhook]:
    message = send.message
    hooks = []
    for status, when in zip(LIFECYCLE, timeline(at, step, len(LIFECYCLE)), strict=False):
        report: dict[str, Any] = {
            "messageId": message.message_id, "accountId": message.details["account_id"],
            "toNumber": message.to, "channel": message.details["channel"], "status": status,
            "timestamp": iso_ms(when),
        }
        if message.correlation_id is not None:
            report["clientRef"] = message.correlation_id
        hooks.append(webhook(f"status:{status}", report))
    return hooks


def inbound_webhook(account: Account, inbound: Inbound, *, at: datetime) -> Webhook:
    config = checked_config(account, Outbound)
    if inbound.postback is not None:
        raise InboundNotSupported("Ubiqio SMS/MMS messages have no buttons to tap")
    report: dict[str, Any] = {
        "messageId": inbound.message_id, "accountId": config.account_id,
        "fromNumber": inbound.sender, "message": inbound.text,
        "channel": config.channel.upper(), "receivedAt": iso_ms(at),
    }
    if inbound.to is not None:
        report["toNumber"] = inbound.to
    return webhook("inbound", report)


# --- helpers ---------------------------------------------------------------------------------


def _key(config: Outbound) -> bytes:
    """A 256-bit HS256 key derived from the client secret (short secrets make weak keys)."""
    return hashlib.sha256(b"ubiqio-simulator:" +
                          config.client_secret.get_secret_value().encode()).digest()


def _token(config: Outbound, now: float | None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {"iss": _ISSUER, "sub": config.client_id, "accountId": config.account_id,
              "iat": issued, "exp": issued + TOKEN_TTL_S}
    return jwt.encode(claims, _key(config), algorithm="HS256")


def _problem_with(payload: Any, config: Outbound) -> str | None:
    """What is wrong with a send body (None when valid), in the order a reader checks."""
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    missing = [name for name in _REQUIRED if not text(payload.get(name))]
    # `message` is required, for an MMS too (seed 000).
    if not text(payload.get("message")):
        missing.append("message")
    if missing:
        return f"missing required fields: {', '.join(missing)}"
    if payload["channel"] not in CHANNELS:
        return "channel must be SMS or MMS"
    if payload["accountId"] != config.account_id:
        return "accountId does not belong to this client"
    if payload["templateId"] != config.template_id:
        return "unknown templateId"
    priority = payload.get("priority")
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
        return "priority must be an integer"
    if payload["channel"] == "MMS" and not text(payload.get("imageUrl")):
        return "imageUrl is required for MMS"
    for name in ("clientRef", "statusCallback", "imageUrl", "caption"):
        if payload.get(name) is not None and not isinstance(payload[name], str):
            return f"{name} must be a string"
    return None


def _error(status: int, reason: str) -> Response:
    return json_response({"error": reason}, status)
