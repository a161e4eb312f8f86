"""Infobip Omnichat (legacy) client: `POST {base_url}/omnichat/1/applications/{application_key}
/integrations/{integration_type}/message` with HTTP Basic auth (seed 004).

    {"to": <user key>, "message": {"type": "TEXT", "text": ...}}
    {"to": <user key>, "message": {"type": "IMAGE", "text": <text or caption>, "url": ...}}
    {"to": <user key>, "message": {"type": "BUTTONS", "text": ...,
                                   "buttons": [{"type": "POSTBACK", "text": title,
                                                "payload": payload}]}}

Omnichat cannot carry, so these are permanent errors before anything is sent: more than one
media item, media that is not an image (there is no file type), an image with neither text nor
caption (IMAGE requires `text`), more than 3 buttons, and buttons together with an image
(BUTTONS has no image). `to` is the Omnichat user key.

The integration in the path decides the channel (there is no channel field), so a command that
names another channel than the integration's (`FACEBOOK` is `messenger`, as inbound events name
it) is refused too, rather than sent on the integration's channel to a user key of another.
`unknown` is sent: Omnichat's documented inbound names no channel, so a reply to it reads
`unknown` unless the webhookUrl labels it, and the account's integration is the one it most
likely came through (an application has one webhookUrl for all its integrations).

The send API has no correlation field, no per-message webhook URL (reports go to the
application's `webhookUrl`, set when the application is created) and no reply reference, so the
command id, the webhook URL and `in_reply_to` are not sent: reports correlate by `messageId`.
Response: `messageId`, read as ingest reads the reports' own (infobip.message_id: a string, an
integer's digits, `7.0` as `"7"`): it is all that correlates them. A `REJECTED`,
`UNDELIVERABLE` or `EXPIRED` status group is a permanent error, and so is seed 004's error body
(`requestError`) in a 2xx; any other 2xx without an id is accepted with id `None` (resending
could send the message twice).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from consumers.outbound.base import OutboundConfig, SendContext, SendReceipt
from consumers.outbound.content import is_unknown_channel, media_kind, refuse
from consumers.outbound.infobip import message_receipt, success_body
from consumers.outbound.provider_client import ProviderClient
from consumers.outbound.responses import as_str
from normalizers.base import NormalizeError
from normalizers.channels import channel as channel_name
from switchboard.accounts import Secret
from switchboard.commands import OutboundCommand
from switchboard.logs import register_secrets

NAME = "infobip-omnichat"

MAX_BUTTONS = 3


class Config(OutboundConfig):
    """`[accounts.<name>.outbound]` for Infobip Omnichat."""

    username: str
    password: Secret
    application_key: str
    integration_type: str = "FACEBOOK"


class Client(ProviderClient[Config]):
    """Sends an account's commands to one Omnichat application integration."""

    def __init__(self, config: Config, http: httpx.AsyncClient, context: SendContext) -> None:
        super().__init__(config, http, context)
        self._url = (f"{config.base_url.rstrip('/')}/omnichat/1/applications/"
                     f"{quote(config.application_key, safe='')}/integrations/"
                     f"{quote(config.integration_type, safe='')}/message")
        credentials = f"{config.username}:{config.password.get_secret_value()}".encode()
        encoded = base64.b64encode(credentials).decode()
        register_secrets([encoded])  # the password as the header carries it, quoted back or logged
        self._headers = {"Authorization": f"Basic {encoded}", "Accept": "application/json"}

    async def send(self, command: OutboundCommand) -> SendReceipt:
        check_channel(command.channel, self._config.integration_type)
        payload = {"to": command.to, "message": build_message(command)}
        return read_response(await self._post(self._url, payload, self._headers))


def check_channel(requested: str | None, integration_type: str) -> None:
    """A permanent SendError if the command names a channel other than the integration's
    (read as events name channels: `FACEBOOK` and `Facebook` are `messenger`)."""
    if requested is None or is_unknown_channel(requested):
        return
    integration = _channel_of(integration_type)
    if _channel_of(requested) != integration:
        refuse(f"this Omnichat account sends through its {integration_type} integration "
               f"(channel {integration}), not on {requested[:100]!r}: send it through an "
               f"account of that channel")


def _channel_of(label: str) -> str:
    try:
        return channel_name(label)
    except NormalizeError:  # a label longer than any channel's: none of them
        return label


def build_message(command: OutboundCommand) -> dict[str, Any]:
    """The `message` object; a permanent SendError if Omnichat cannot carry the command."""
    if command.buttons:
        return _buttons_message(command)
    if command.media:
        return _image_message(command)
    return {"type": "TEXT", "text": command.text or ""}


def _buttons_message(command: OutboundCommand) -> dict[str, Any]:
    if len(command.buttons) > MAX_BUTTONS:
        refuse(f"Omnichat BUTTONS carries at most {MAX_BUTTONS} buttons, "
               f"got {len(command.buttons)}")
    if command.media:
        refuse("Omnichat BUTTONS messages cannot carry media")
    buttons = [{"type": "POSTBACK", "text": button.title, "payload": button.payload}
               for button in command.buttons]
    return {"type": "BUTTONS", "text": command.text or "", "buttons": buttons}


def _image_message(command: OutboundCommand) -> dict[str, Any]:
    if len(command.media) > 1:
        refuse(f"Omnichat carries one image per message, got {len(command.media)} media items")
    media = command.media[0]
    if media_kind(media) != "image":
        refuse(f"Omnichat sends only images, not {media.content_type or media.url}")
    text = command.text or media.caption
    if not text:  # seed 004: IMAGE `text` is required
        refuse("Omnichat images need text: give the command a text or the image a caption")
    return {"type": "IMAGE", "text": text, "url": media.url}


def read_response(response: httpx.Response) -> SendReceipt:
    """The receipt from a send response, or the SendError it stands for."""
    body = success_body(response)
    return message_receipt(body if isinstance(body, dict) else {}, "Omnichat", text=as_str)
