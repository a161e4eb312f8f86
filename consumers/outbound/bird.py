"""Bird Channels API client: `POST {base_url}/workspaces/{workspace_id}/channels/{channel_id}
/messages` with `Authorization: AccessKey <access_key>` (seed 001).

    {"receiver": {"contacts": [{"identifierValue": <to>}]},
     "reference": <command id>,
     "body": {"type": "text", "text": {"text": ...}},
     "replyTo": {"id": <in_reply_to>, "type": "message"}}

- body: no media -> `text`. Media that are all images -> `image` {images: [{mediaUrl}], text};
  any other media -> `file` {files: [{mediaUrl, contentType}], text} with every item (images
  included), so one message still carries them all. At most 10 media items (Bird's limit);
  more is a permanent error. The text is the command's, else the first caption. A file's
  contentType is the media's, else guessed from its URL's extension; Bird's schema requires it
  (every file example in seed 001 has one), so a file with neither is refused before sending.
- media on an SMS channel (the account's `channel`, "sms" by default): seed 001 says all SMS
  channels send text, and only those with an MMS-capable number (US and Canada numbers) carry
  media. So media there, with text or without, is a permanent error before anything is sent
  unless the account says its number is MMS-capable (`mms = true`); the reason says so, and
  that the link can go in the text. Other channels (WhatsApp, Telegram ...) send media.
- buttons: the seed documents no reply buttons for these bodies (only link actions) and the
  channel is an SMS channel, so the choices are appended to the text ("1) Yes 2) No") and the
  answer comes back as plain text.
- reference (= command id) comes back in the channel's outbound webhooks as the correlation
  id. The Channels API takes no per-message webhook URL: point the workspace's webhook
  subscription at the account's ingest URL.

Errors: the Channels API's `{code, message}`, a 422 with `details` (field -> problems), quoted
after the message. Bird's newer error envelope, `{type, code, name, message, param, details:
[{param, message}], request_id}` under `error` (bird.com/en-us/docs/guides/errors) or some of
it at the top level (bird.com/docs/errors), is read the same way: its `code` (else its `type`)
is the failure's code, the description quotes its `message`, the fields it names (`details`,
else `param`), its `type` and its `request_id` (what Bird's support asks for). The legacy
MessageBird REST API's `{"errors": [{code, description, parameter}]}` is not the Channels
API's, but rest.messagebird.com answers it where base_url was left there: read alike (the first
error's code; each description and parameter), noting the format.

Response (202): `id` is the provider message id, `status` the provider status. A `rejected` or
`sending_failed` status is a permanent error. `skipped` is an error too, not retried, but not
marked permanent: not in seed 001's status enum, it is in Bird's current one, undescribed, next
to `scheduled` for a message sent later; read as Bird choosing not to send it (frequency
capping, a holdout: what may pass), as its status webhooks are (normalizers/_bird_channels.py),
so the send is not reported accepted. The answer's schema marks `id` required, so a 2xx
without one is not Bird's answer (a base_url pointing at another API): `bad_response`, maybe
sent, never sent again. One with Bird's error fields (`code` or `type`, and `message`, either
format) is failed so too (the seed documents no error in a 2xx, so it is not read as a
refusal), quoting them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from consumers.outbound.base import OutboundConfig, SendContext, SendError, SendReceipt
from consumers.outbound.content import guess_content_type, refuse, refuse_media, with_choices
from consumers.outbound.http_errors import classify_http_error
from consumers.outbound.provider_client import ProviderClient
from consumers.outbound.responses import as_str, as_text, json_body, no_acceptance, snippet
from switchboard.accounts import Secret
from switchboard.commands import OutboundCommand
from switchboard.events import Media

NAME = "bird"

MAX_MEDIA = 10
_FAILED_STATUSES = frozenset({"rejected", "sending_failed"})
# Bird chose not to send it: reported failed, not accepted, but what made Bird skip it may pass.
_SKIPPED = "skipped"


class Config(OutboundConfig):
    """`[accounts.<name>.outbound]` for Bird."""

    header_secrets = frozenset({"access_key"})  # `Authorization: AccessKey <access_key>`, as is
    access_key: Secret
    workspace_id: str
    channel_id: str
    # The SMS channel's number is MMS-capable (seed 001: "currently numbers purchased for the
    # United States and Canada"), so it carries media. Not known from the API's answers before
    # a send, so the account says it.
    mms: bool = False


class Client(ProviderClient[Config]):
    """Sends an account's commands through one Bird channel."""

    def __init__(self, config: Config, http: httpx.AsyncClient, context: SendContext) -> None:
        super().__init__(config, http, context)
        self._url = (f"{config.base_url.rstrip('/')}/workspaces/"
                     f"{quote(config.workspace_id, safe='')}/channels/"
                     f"{quote(config.channel_id, safe='')}/messages")
        self._headers = {"Authorization": f"AccessKey {config.access_key.get_secret_value()}",
                         "Accept": "application/json"}

    async def send(self, command: OutboundCommand) -> SendReceipt:
        payload = build_request(command, self._config)
        return read_response(await self._post(self._url, payload, self._headers))


def build_request(command: OutboundCommand, config: Config) -> dict[str, Any]:
    """The send request body; a permanent SendError if Bird cannot carry the command."""
    if command.media and config.channel.strip().lower() == "sms" and not config.mms:
        # Refused here rather than left to Bird: seed 001 documents no answer for media on a
        # channel without MMS, and whatever it is would not say what to do instead.
        refuse_media("Bird SMS channels carry media only with an MMS-capable number (US and "
                     "Canada numbers), and this account does not say its number is one",
                     "set `mms = true` in the account's outbound table if the channel's number "
                     "is MMS-capable, or send it through an account on a channel that carries "
                     "media (WhatsApp, ...)")
    payload: dict[str, Any] = {
        "receiver": {"contacts": [{"identifierValue": command.to}]},
        "reference": command.id,
        "body": _body(command),
    }
    if command.in_reply_to:
        payload["replyTo"] = {"id": command.in_reply_to, "type": "message"}
    return payload


def _body(command: OutboundCommand) -> dict[str, Any]:
    text = command.text
    if not text and command.media:
        text = next((media.caption for media in command.media if media.caption), None)
    if command.buttons:
        text = with_choices(text, command.buttons)
    if not command.media:
        return {"type": "text", "text": {"text": text or ""}}
    if len(command.media) > MAX_MEDIA:
        refuse(f"Bird carries at most {MAX_MEDIA} media items, got {len(command.media)}")
    kinds = [_content_type(media) for media in command.media]
    if all(kind.startswith("image/") for kind in kinds):
        part: dict[str, Any] = {"images": [{"mediaUrl": media.url} for media in command.media]}
        return {"type": "image", "image": _with_text(part, text)}
    if "" in kinds:
        # Refused here rather than left to Bird, whose schema requires each file's contentType:
        # its 422 would not say which media item, nor that the command can give the type. Named
        # by position, not URL: a signed URL's query is a credential.
        position = kinds.index("") + 1
        refuse(f"Bird needs each file's content type, and media item {position} of "
               f"{len(kinds)} has none given nor one its URL's extension tells; give the "
               f"media's content_type (e.g. \"application/pdf\")")
    files = [{"mediaUrl": media.url, "contentType": kind}
             for media, kind in zip(command.media, kinds, strict=True)]
    return {"type": "file", "file": _with_text({"files": files}, text)}


def _with_text(part: dict[str, Any], text: str | None) -> dict[str, Any]:
    return {**part, "text": text} if text else part


def _content_type(media: Media) -> str:
    """The media's content type, else a guess from the URL's extension, else ""."""
    return (guess_content_type(media) or "").strip().lower()


def read_response(response: httpx.Response) -> SendReceipt:
    """The receipt from a send response, or the SendError it stands for."""
    body = json_body(response)
    body = body if isinstance(body, dict) else {}
    if not response.is_success:
        code, description = error_fields(body)
        raise classify_http_error(response, description or snippet(response), code)
    status = as_str(body.get("status"))
    if status in _FAILED_STATUSES:
        raise SendError(f"Bird did not take the message ({status}): {_failure(body)}",
                        retryable=False, code=status)
    if status == _SKIPPED:
        raise SendError(f"Bird skipped the message, so it is not sent (status skipped, which "
                        f"Bird does not describe): {_failure(body)}", retryable=False,
                        code=status, permanent=False)
    message_id = as_str(body.get("id"))
    if message_id is None and (refusal := _error_said(body)):
        # The shape of Bird's refusals, but seed 001 documents none in a 2xx (only the 202's
        # message): not read as one, since the message may have been taken. Quoted, so the
        # operator reads Bird's reason rather than a question about base_url.
        raise SendError(f"HTTP {response.status_code} without an id, with Bird's error fields "
                        f"instead ({refusal}); Bird documents no error in a 2xx, so the message "
                        f"may have been sent", retryable=True, code="bad_response",
                        maybe_sent=True)
    if message_id is None:
        raise no_acceptance(response, "id, which every Bird acceptance carries")
    return SendReceipt(provider_message_id=message_id, provider_status=status)


def _error_said(body: dict[str, Any]) -> str | None:
    """`code: message (details)` where the body has the fields of Bird's error answers."""
    code, description = error_fields(body)
    said = _message_of(_envelope(body)) or _legacy_errors(body)
    if code is None or description is None or not said:
        return None
    return f"{code}: {description}"


def error_fields(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(code, description) from Bird's error bodies: the Channels API's `{code, message,
    details}` and the newer envelope, top-level or under `error` (`type`, `code`, `name`,
    `message`, `param`, `details`, `request_id`). The description is the message, then the
    fields refused and, in brackets, the type and the request id. Failing those, the legacy
    MessageBird REST API's `errors` list."""
    envelope = _envelope(body)
    code = as_text(envelope.get("code")) or as_str(envelope.get("type"))
    description = _message_of(envelope)
    if code is None and description is None and (legacy := _legacy_errors(body)):
        return legacy
    fields = _details(envelope.get("details")) or _param(envelope.get("param"))
    if fields:
        description = f"{description or 'refused'} ({fields})"
    kind, request_id = as_str(envelope.get("type")), as_str(envelope.get("request_id"))
    noted = [f"type {kind}"] if kind and kind != code else []
    if request_id:
        noted.append(f"request_id {request_id[:100]}")
    if description and noted:
        description = f"{description} [{', '.join(noted)}]"
    return code, description


# At most this many of the legacy `errors` are quoted: one answer names a few at most.
_LEGACY_ERRORS_QUOTED = 5
_LEGACY_NOTE = ("[MessageBird's legacy REST error format; the Channels API is at "
                "https://api.bird.com]")


def _legacy_errors(body: dict[str, Any]) -> tuple[str | None, str] | None:
    """(code, description) from the legacy MessageBird REST API's `{"errors": [{code,
    description, parameter}]}`: what rest.messagebird.com answers (its SDKs read it so), e.g.
    401 `{code: 2, "Request not allowed (incorrect access_key)", parameter: access_key}` to a
    key it does not know. Bird documents no such answer of the Channels API, but a base_url
    left at rest.messagebird.com (the same AccessKey header) reaches that API: the first code
    given, and each error's description and parameter, with a note naming the format. None
    when the body is not that shape."""
    errors = body.get("errors")
    items = [item for item in errors if isinstance(item, dict)] if isinstance(errors, list) else []
    said = []
    for item in items[:_LEGACY_ERRORS_QUOTED]:
        description, field = as_str(item.get("description")), _param(item.get("parameter"))
        if description or field:
            text = description or "refused"
            said.append(f"{text} ({field})" if field else text)
    if not said:
        return None
    code = next((code for item in items if (code := as_text(item.get("code")))), None)
    return code, f"{'; '.join(said)[:500]} {_LEGACY_NOTE}"


def _envelope(body: dict[str, Any]) -> dict[str, Any]:
    """The newer API nests its error fields under `error`; the Channels API does not."""
    nested = body.get("error")
    return nested if isinstance(nested, dict) else body


def _message_of(envelope: dict[str, Any]) -> str | None:
    return as_str(envelope.get("message")) or as_str(envelope.get("description"))


def _param(value: Any) -> str:
    """The newer envelope's `param`: the one field at fault (a missing one, say)."""
    return f"field {value[:200]}" if isinstance(value, str) and value else ""


def _details(value: Any) -> str:
    """Which fields Bird refused, where its `message` says only that one is malformed:
    `field: problem, problem; ...` from a Channels 422's `details` (field -> problems), or
    `param: message; ...` from the newer envelope's (a list of `{param, message}`)."""
    if isinstance(value, list):  # read as the Channels map: a field's problems together
        by_field: dict[str, list[str]] = {}
        for item in value:
            if isinstance(item, dict):
                said = as_str(item.get("message"))
                by_field.setdefault(as_str(item.get("param")) or "?", []).extend(
                    [said] if said else [])
        value = by_field
    if not isinstance(value, dict):
        return ""
    fields = []
    for field, problems in value.items():
        listed = problems if isinstance(problems, list) else [problems]
        said = ", ".join(str(problem) for problem in listed
                         if isinstance(problem, str | int) and problem != "")
        fields.append(f"{field}: {said}" if said else str(field))
    return "; ".join(fields)[:500]


def _failure(body: dict[str, Any]) -> str:
    failure = body.get("failure")
    description = as_str(failure.get("description")) if isinstance(failure, dict) else None
    return description or as_str(body.get("reason")) or "no reason given"
