"""Infobip Messages API client: `POST {base_url}/messages-api/1/messages`, `Authorization: App`.

One command is one message (seed 003):

    {"messages": [{"channel": "SMS", "sender": <sender>, "destinations": [{"to": <to>}],
                   "content": {"body": {...}, "buttons": [...]},
                   "webhooks": {"delivery": {"url": <webhook>}, "seen": {"url": <webhook>},
                                "callbackData": <command id>}}]}

- to: an E.164 number without its `+`, as Infobip's examples write numbers.
- channel: the command's channel, else the account's, as Infobip names it: `sms` -> `SMS`, and
  the schema's `viber`, `instagram`, `line`, `apple` -> `VIBER_BM`, `INSTAGRAM_DM`, `LINE_ON`,
  `APPLE_MB` (seed 003's enum). A Viber bot account sets `channel = "viber_bot"`; its replies,
  whose inbound channel reads `viber`, then go out as `VIBER_BOT`. `unknown` (a reply to an
  inbound whose webhook named no channel: an unlabelled per-channel Messenger message) is a
  permanent error before anything is sent; Infobip has no such channel, and its 400 for
  `UNKNOWN` would not say that the webhook URL needs its `?channel=` label.
- body: `TEXT` {text}; one media item -> `IMAGE` (image/*), `VIDEO` (video/*) or `DOCUMENT`
  {url, text = the command text or the caption}. The Messages API carries one body, so more
  than one media item is a permanent error. On SMS, media is sent all the same, not refused:
  seed 003's `options.adaptationMode` (not sent, so its default, true) has Infobip "map it as
  best effort" when the channel does not support the message, and Infobip's Messages API page
  shows an image on SMS sent as its URL (with adaptationMode false, an error).
- buttons: `content.buttons` [{type: REPLY, text: title, postbackData: payload}] on channels
  that show buttons. SMS and MMS cannot: there the choices are appended to the text
  ("1) Yes 2) No") and the user's answer comes back as plain text.
- in_reply_to: the Messages API has no reply reference; it is ignored.
- callbackData (= command id) sits in `webhooks` next to `delivery`/`seen`, so it comes back in
  delivery and seen reports as the correlation id.

Response: `messages[0].messageId` is the provider message id (`message_id`: read as ingest
reads a report's, so `7.0` is `"7"`, as Omnichat's client reads it). A `REJECTED`,
`UNDELIVERABLE` or `EXPIRED` status group in a 2xx (final: the message will not be delivered)
is a permanent error, but for the account's credit spent (`REJECTED_NOT_ENOUGH_CREDITS`,
`REJECTED_PREPAID_PACKAGE_EXPIRED`): not retried, and not permanent (it can go once topped up).
Every acceptance carries the id (the spec marks `messages` required, and its response gives
each message its `messageId`; we set none, so Infobip makes it), so a 2xx without one is not
Infobip's answer (a base_url pointing at another API): `bad_response`, maybe sent, never sent
again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from consumers.outbound.base import OutboundConfig, SendContext, SendError, SendReceipt
from consumers.outbound.content import (
    is_unknown_channel,
    media_kind,
    refuse,
    refuse_unknown_channel,
    with_choices,
)
from consumers.outbound.http_errors import classify_http_error
from consumers.outbound.provider_client import ProviderClient
from consumers.outbound.responses import as_text, json_body, no_acceptance, snippet
from normalizers.fields import EXACT_FLOAT_LIMIT
from switchboard.accounts import Secret
from switchboard.commands import OutboundCommand
from switchboard.events import Media

NAME = "infobip"

PATH = "/messages-api/1/messages"
# Channels whose messages cannot show buttons: the choices go into the text instead.
_NO_BUTTON_CHANNELS = frozenset({"SMS", "MMS"})
# The schema's channel names (normalizers.channels) where Infobip's enum spells them otherwise.
_INFOBIP_CHANNELS = {"viber": "VIBER_BM", "instagram": "INSTAGRAM_DM", "line": "LINE_ON",
                     "apple": "APPLE_MB"}
# Per-channel inbound messages that name no channel (Messenger's) are `unknown` unless the
# webhook URL labels them (docs/providers/infobip.md).
UNKNOWN_CHANNEL_FIX = ("add ?channel=<name> to the webhook URL set in Infobip (e.g. "
                       "?channel=MESSENGER) so that its inbound events name their channel (see "
                       "docs/providers/infobip.md), or name the channel in the command")


class Config(OutboundConfig):
    """`[accounts.<name>.outbound]` for Infobip."""

    header_secrets = frozenset({"api_key"})  # `Authorization: App <api_key>`, as is
    api_key: Secret
    sender: str


class Client(ProviderClient[Config]):
    """Sends an account's commands through the Infobip Messages API."""

    def __init__(self, config: Config, http: httpx.AsyncClient, context: SendContext) -> None:
        super().__init__(config, http, context)
        self._url = config.base_url.rstrip("/") + PATH

    async def send(self, command: OutboundCommand) -> SendReceipt:
        payload = build_request(command, self._config, self._context.webhook_url)
        return read_response(await self._post(self._url, payload, self._headers()))

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"App {self._config.api_key.get_secret_value()}",
                "Accept": "application/json"}


def build_request(command: OutboundCommand, config: Config,
                  webhook_url: str | None) -> dict[str, Any]:
    """The send request body; a permanent SendError if Infobip cannot carry the command."""
    if is_unknown_channel(command.channel or config.channel):
        refuse_unknown_channel("Infobip", UNKNOWN_CHANNEL_FIX)
    channel = infobip_channel(command.channel, config.channel)
    message: dict[str, Any] = {
        "channel": channel,
        "sender": config.sender,
        "destinations": [{"to": _destination(command.to)}],
        "content": _content(command, channel),
        "webhooks": _webhooks(command.id, webhook_url),
    }
    return {"messages": [message]}


def _destination(to: str) -> str:
    """Numbers as Infobip writes them, digits without `+` (seed 003: "alphanumeric or
    numeric", examples `41793026727`); other addresses (channel user ids) as given."""
    digits = to[1:] if to.startswith("+") else to
    return digits if digits.isascii() and digits.isdigit() else to


def infobip_channel(requested: str | None, configured: str) -> str:
    """Infobip's channel enum value for the command's channel, else the account's."""
    name = (requested or configured).lower()
    if name == "viber" and configured.lower() in ("viber_bm", "viber_bot"):
        return configured.upper()  # which Viber product the account is on
    return _INFOBIP_CHANNELS.get(name, name.upper())


def _content(command: OutboundCommand, channel: str) -> dict[str, Any]:
    buttons_in_text = channel in _NO_BUTTON_CHANNELS
    text = command.text
    if buttons_in_text and command.buttons:
        text = with_choices(text, command.buttons)
    content: dict[str, Any] = {"body": _body(command, text)}
    if command.buttons and not buttons_in_text:
        content["buttons"] = [{"type": "REPLY", "text": button.title,
                               "postbackData": button.payload} for button in command.buttons]
    return content


def _body(command: OutboundCommand, text: str | None) -> dict[str, Any]:
    if not command.media:
        return {"type": "TEXT", "text": text or ""}
    if len(command.media) > 1:
        refuse(f"Infobip carries one media item per message, got {len(command.media)}")
    media = command.media[0]
    body: dict[str, Any] = {"type": _media_type(media), "url": media.url}
    caption = text or media.caption
    if caption:
        body["text"] = caption
    return body


def _media_type(media: Media) -> str:
    kind = media_kind(media)
    return {"image": "IMAGE", "video": "VIDEO"}.get(kind, "DOCUMENT")


def _webhooks(command_id: str, webhook_url: str | None) -> dict[str, Any]:
    webhooks: dict[str, Any] = {"callbackData": command_id}
    if webhook_url:
        webhooks["delivery"] = {"url": webhook_url}
        webhooks["seen"] = {"url": webhook_url}
    return webhooks


def read_response(response: httpx.Response) -> SendReceipt:
    """The receipt from a send response, or the SendError it stands for."""
    receipt = message_receipt(_first_message(success_body(response)), "Infobip")
    if receipt.provider_message_id is None:
        raise no_acceptance(response, "messages[0].messageId, which every Infobip acceptance "
                                      "carries")
    return receipt


def success_body(response: httpx.Response) -> Any:
    """The parsed body of a 2xx; for any other status the SendError its error body describes.

    A 2xx carrying the `requestError` body is a refusal too: it is how Infobip answers a
    request it did not act on (seeds 003, 004 show it with 400 and 401), and it holds no
    message. Omnichat, whose acceptances need no id, would otherwise report it accepted (the
    message never sent); the Messages API reported it possibly sent. One that also holds a
    message (`messages`, `messageId`) says both, and is read as the acceptance it holds."""
    body = json_body(response)
    if not response.is_success:
        code, description = infobip_error(body)
        raise classify_http_error(response, description or snippet(response), code)
    if (isinstance(body, dict) and isinstance(body.get("requestError"), dict)
            and "messages" not in body and "messageId" not in body):
        code, description = infobip_error(body)
        raise SendError(f"HTTP {response.status_code} with Infobip's error body, a refusal: "
                        f"{description or snippet(response)}", retryable=False,
                        code=code or "provider_error")
    return body


# Status groups that end a message undelivered: Infobip's status codes appear "in message send
# responses" too, and UNDELIVERABLE_*, EXPIRED_*, REJECTED_* are final (its "Message status
# codes" page), so one in a send's answer means the message will not reach the recipient.
_UNDELIVERED_GROUPS = {"REJECTED": "rejected the message",
                       "UNDELIVERABLE": "cannot deliver the message",
                       "EXPIRED": "let the message expire undelivered"}


# Refusals of the account's, not of the message: its credit spent (prepaid, or a package of
# messages expired). Sent again once the user tops up, the message can go out, so the result is
# not permanent; the sender does not retry it, as seconds later the credit is as spent.
_NO_CREDIT = frozenset({"REJECTED_NOT_ENOUGH_CREDITS", "REJECTED_PREPAID_PACKAGE_EXPIRED"})


def message_receipt(message: dict[str, Any], api: str, *,
                    text: Callable[[Any], str | None] = as_text) -> SendReceipt:
    """The receipt for one message object of a 2xx body (`messageId` and the Infobip `status`
    object, the same in both Infobip APIs); a permanent SendError when its group is final and
    not DELIVERED (REJECTED, UNDELIVERABLE, EXPIRED).

    `text` reads the status's fields: the Messages API's may be numbers, Omnichat's are read as
    strings. `messageId` is read by `message_id`, the same in both.
    """
    status = message.get("status")
    status = status if isinstance(status, dict) else {}
    status_name = text(status.get("name"))
    group = text(status.get("groupName"))
    if group in _UNDELIVERED_GROUPS:
        reason = text(status.get("description")) or status_name or group.lower()
        no_credit = status_name in _NO_CREDIT
        raise SendError(f"{api} {_UNDELIVERED_GROUPS[group]}: {reason}" + (
                            "; the account's credit at Infobip is spent: once it is topped "
                            "up, send the message again under a new command id"
                            if no_credit else ""),
                        retryable=False, code=status_name or group, permanent=not no_credit)
    return SendReceipt(provider_message_id=message_id(message.get("messageId")),
                       provider_status=status_name)


def message_id(value: Any) -> str | None:
    """A `messageId` as ingest reads a report's (normalizers.fields.text_field): a string, an
    integer's digits, or a float that holds an integer below 2**53 as that integer's (`7.0` is
    "7"). Omnichat's reports match the send by it alone, and a Messages API acceptance without
    one is failed as possibly sent. From 2**53 on a float skips integers and ingest refuses the
    report's: no id is better than one that may match another message's reports. A fraction or
    a boolean is no id."""
    if isinstance(value, float) and value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
        return str(int(value))
    return as_text(value)


def _first_message(body: Any) -> dict[str, Any]:
    messages = body.get("messages") if isinstance(body, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return messages[0]
    return {}


def infobip_error(body: Any) -> tuple[str | None, str | None]:
    """(code, description) from Infobip's error bodies: `requestError.serviceException`
    (legacy, Omnichat) or `{errorCode, description, violations}` (newer APIs)."""
    if not isinstance(body, dict):
        return None, None
    request_error = body.get("requestError")
    if isinstance(request_error, dict):
        exception = request_error.get("serviceException")
        if isinstance(exception, dict):
            return as_text(exception.get("messageId")), as_text(exception.get("text"))
    description = as_text(body.get("description"))
    violations = _violations(body.get("violations"))
    if violations:
        description = f"{description or 'invalid request'} ({violations})"
    return as_text(body.get("errorCode")), description


def _violations(value: Any) -> str:
    """`property: violation; ...` from the newer APIs' `violations` list."""
    items = value if isinstance(value, list) else []
    return "; ".join(f"{item.get('property')}: {item.get('violation')}" for item in items
                     if isinstance(item, dict))
