"""Webex Connect Send Message API v1 client: `POST {base_url}/resources/v1/messaging` with the
header `key: <service_key>` (seed 002). SMS only.

    {"deliverychannel": "sms",
     "destination": [{"msisdn": [<to>]}],
     "channels": {"sms": {"senderid": <sender_id>, "text": ..., "type": "4"?}},
     "correlationid": <command id>, "callbackData": <command id>, "notifyurl": <webhook>}

- Only the `sms` channel is documented for this API: another channel is a permanent error,
  `unknown` too (a reply to an inbound that did not say its channel), which says so.
- text: at most 1024 characters (the API's limit; longer is a permanent error). Text outside the
  GSM 7-bit alphabet is sent as `type: "4"` (Unicode) so that it is not garbled; otherwise
  `type` is left out (Webex's default, plain text).
- media: SMS carries none, so media is a permanent error (no silent dropping), whose reason
  says to send the link in the text instead.
- buttons: appended to the text ("1) Yes 2) No"); the answer comes back as plain text.
- in_reply_to: SMS has no reply reference; ignored.
- correlationid and callbackData (both = command id) come back in the delivery receipts.
- notifyurl: the account's ingest URL, where Webex sends this message's receipts. Webex adds
  credentials to it only from an authentication profile named by `notifyurlAuthId`
  (`notify_auth_id`; set the profile up with the account's Basic credentials). Without one the
  URL must carry the account's token, so it is sent only for the token scheme.

Response: HTTP 200 `{"response": [{"code": "1001", "transid": ..., "description": "Queued"}]}`;
`transid` is the provider message id (receipts carry it). Webex also answers HTTP 200 with an
error object, `{"response": {"code": "7001", "description": "Authentication failed."}}`: any
code other than 1000/1001/1002 is an error, retryable only for 7005 (request expired,
unverified: see RETRYABLE_CODES) and 7020 (the tenant's rate limit, "You have reached maximum
transaction limit": it holds the account's other sends too, like a 429). 7006 (internal error)
is Webex's 500 in an HTTP 200: Webex may have queued the SMS before failing, so it is
`maybe_sent`, never sent again by the sender, as after an HTTP 500. Every answer, acceptance or
refusal, is that `response` with a `code`, so a 2xx without one is not Webex's answer (a
base_url pointing at another API): `bad_response`, maybe sent, never sent again. An accepting
code without a `transid` (every sample has one, but no field is documented as required) is
accepted with id `None` (correlationid still correlates receipts).
"""

from __future__ import annotations

from typing import Any

import httpx

from consumers.outbound.base import OutboundConfig, SendContext, SendError, SendReceipt
from consumers.outbound.content import (
    is_unknown_channel,
    refuse,
    refuse_media,
    refuse_unknown_channel,
    with_choices,
)
from consumers.outbound.http_errors import classify_http_error
from consumers.outbound.provider_client import ProviderClient
from consumers.outbound.responses import as_text, json_body, no_acceptance, snippet
from switchboard.accounts import Secret
from switchboard.commands import OutboundCommand

NAME = "webex"

PATH = "/resources/v1/messaging"
MAX_TEXT = 1024
SUCCESS_CODES = frozenset({"1000", "1001", "1002"})
# Refused before Webex acted on the request: sending it again is safe. 7005 ("request
# expired") is an unverified reading: seed 002 shows only 1001, 7000 and 7001, and Webex's API
# status code page (help.webexconnect.io/docs/api-codes) could be read only as far as 7003.
# Kept: a code other than 1000-1002 says the SMS was not queued (7006 is the one read as maybe
# taken), so a retry cannot send it twice, and if 7005 is a refusal the 5 attempts only end
# the same way, later.
RETRYABLE_CODES = frozenset({"7005", "7020"})
# "Internal error occurred": Webex's 500, answered with HTTP 200. It may come after the SMS
# was queued, so like a 500 it is an outcome we cannot know (maybe_sent), not a refusal.
INTERNAL_ERROR_CODE = "7006"
# "You have reached maximum transaction limit": the tenant's rate, shared by all its sends.
THROTTLED_CODE = "7020"
UNICODE_TYPE = "4"

# GSM 03.38 basic alphabet and extension table: text outside them needs Unicode.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "\f^{}\\[~]|€"
)


class Config(OutboundConfig):
    """`[accounts.<name>.outbound]` for Webex Connect."""

    header_secrets = frozenset({"service_key"})  # the `key` header, as is
    service_key: Secret
    sender_id: str
    # A Webex authentication profile's id: Webex then adds its credentials to the receipts.
    notify_auth_id: str | None = None


class Client(ProviderClient[Config]):
    """Sends an account's commands as SMS through Webex Connect."""

    def __init__(self, config: Config, http: httpx.AsyncClient, context: SendContext) -> None:
        super().__init__(config, http, context)
        self._url = config.base_url.rstrip("/") + PATH
        self._headers = {"key": config.service_key.get_secret_value(),
                         "Accept": "application/json"}

    async def send(self, command: OutboundCommand) -> SendReceipt:
        notify_url = (self._context.plain_webhook_url if self._config.notify_auth_id
                      else self._context.webhook_url)
        payload = build_request(command, self._config, notify_url)
        return read_response(await self._post(self._url, payload, self._headers))


def build_request(command: OutboundCommand, config: Config,
                  webhook_url: str | None) -> dict[str, Any]:
    """The send request body; a permanent SendError if Webex SMS cannot carry the command."""
    channel = (command.channel or config.channel).lower()
    if is_unknown_channel(channel):
        refuse_unknown_channel("the Webex client, which sends SMS only,",
                               'if it came by SMS, name channel "sms" in the command (see '
                               "docs/providers/webex.md for how an inbound's channel is read)")
    if channel != "sms":
        refuse(f"the Webex client sends SMS only, not {channel!r}")
    if command.media:
        # Seed 002's SMS object has text and no media field: nothing to map media onto.
        refuse_media("Webex SMS cannot carry media (this client sends SMS only)",
                     "send it through an account on a channel that carries media")
    text = command.text or ""
    if command.buttons:
        text = with_choices(text, command.buttons)
    if len(text) > MAX_TEXT:
        refuse(f"Webex SMS text is at most {MAX_TEXT} characters, got {len(text)}")
    sms: dict[str, Any] = {"senderid": config.sender_id, "text": text}
    if not set(text) <= _GSM7:
        sms["type"] = UNICODE_TYPE
    payload: dict[str, Any] = {
        "deliverychannel": "sms",
        "destination": [{"msisdn": [command.to]}],
        "channels": {"sms": sms},
        "correlationid": command.id,
        "callbackData": command.id,
    }
    if webhook_url:
        payload["notifyurl"] = webhook_url
        if config.notify_auth_id:
            payload["notifyurlAuthId"] = config.notify_auth_id
    return payload


def read_response(response: httpx.Response) -> SendReceipt:
    """The receipt from a send response, or the SendError it stands for (also on HTTP 200)."""
    result = _result(json_body(response))
    code = as_text(result.get("code"))
    description = as_text(result.get("description")) or as_text(result.get("message"))
    if not response.is_success:
        raise classify_http_error(response, description or snippet(response), code)
    if code is None:
        raise no_acceptance(response, "a response code, which every Webex answer carries")
    if code not in SUCCESS_CODES:
        internal = code == INTERNAL_ERROR_CODE
        raise SendError(f"Webex error {code}: {description or 'no description'}",
                        retryable=internal or code in RETRYABLE_CODES, code=code,
                        maybe_sent=internal, throttled=code == THROTTLED_CODE)
    return SendReceipt(provider_message_id=as_text(result.get("transid")),
                       provider_status=description)


def _result(body: Any) -> dict[str, Any]:
    """The one result object: `response[0]` on success, `response` on error, or the body
    itself for the `{code, message}` shape other Webex APIs use."""
    if not isinstance(body, dict):
        return {}
    response = body.get("response", body)
    if isinstance(response, list):
        response = response[0] if response else {}
    return response if isinstance(response, dict) else {}
