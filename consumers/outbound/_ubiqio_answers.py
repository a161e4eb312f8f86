"""What a Ubiqio send answer says. Seed 000 shows no success body, so each reading here is ours.

The id is read from `messageId`, `id`, `msgId` or `messageUuid`, at the top level or inside
`data`/`result`/`message`/`messages` (an object, or the first of a list); `status` is kept as
the provider status. A 2xx that says it failed (`"success": false`, also written `"false"`, `0` or
`"0"`; a `status` of `error`, `failed`, `failure`, `fail` or `rejected`; an `error`) and has no
id is a permanent error with Ubiqio's text; such a `success` or `status` next to an id says both
that it was taken and that it failed, so it fails as possibly sent (never sent again). A top-level
`status` or `statusCode` of 400-599 fails as that HTTP status would (with an id: possibly sent). Any
other 2xx without an id is accepted with id `None` (resending could send the message twice;
clientRef correlates reports).
"""

from __future__ import annotations

from typing import Any

import httpx

from consumers.outbound.base import SendError, SendReceipt
from consumers.outbound.http_errors import NOT_TAKEN_STATUSES, classify_http_error
from consumers.outbound.responses import as_text, json_body, snippet

_ID_KEYS = ("messageId", "id", "msgId", "messageUuid")
_NESTED_KEYS = ("data", "result", "message", "messages")
_ERROR_KEYS = ("error", "errors", "message", "detail")
# In a 2xx only these mean failure: `message` may well be a success note.
_SUCCESS_ERROR_KEYS = ("error", "errors")
# How a 2xx may say it failed, none of them documented by Ubiqio: `success` false, or as PHP
# APIs write it ("false", 0, "0"); a `status` of these. Read as an acceptance, a refusal was
# reported accepted, and the message never sent.
_FALSE = ("false", "0")
_FAILED_STATUSES = ("error", "failed", "failure", "fail", "rejected")


def read_response(response: httpx.Response) -> SendReceipt:
    """The receipt from a send response, or the SendError it stands for."""
    body = json_body(response)
    if not response.is_success:
        raise classify_http_error(response, error_text(body) or snippet(response))
    objects = _candidates(body)
    message_id = _message_id(objects)
    if (failed := _failure_said(body)) is not None:
        # No doc shows it, but a JSON API's `success: false` says the request failed; its
        # `message` is then the reason, not a success note.
        reason = error_text(body) or f"no reason given ({failed})"
        if message_id is None:
            raise SendError(f"Ubiqio refused the message: {reason}", retryable=False,
                            code="provider_error")
        raise SendError(f"Ubiqio answered {failed} with message id {message_id}: "
                        f"{reason}", retryable=True, code="provider_error", maybe_sent=True)
    if (said := _http_status_said(body)) is not None:
        raise _status_failure(response, said, error_text(body), message_id)
    error = error_text(body, _SUCCESS_ERROR_KEYS)
    if message_id is None and error is not None:
        raise SendError(f"Ubiqio refused the message: {error}", retryable=False,
                        code="provider_error")
    status = next((value for obj in objects if (value := as_text(obj.get("status")))), None)
    return SendReceipt(provider_message_id=message_id, provider_status=status)


def _message_id(objects: list[dict[str, Any]]) -> str | None:
    return next((value for obj in objects for key in _ID_KEYS
                 if (value := as_text(obj.get(key))) is not None), None)


def _failure_said(body: Any) -> str | None:
    """How a 2xx body says the send failed (`success: false`, `status: failed`), else None.
    Only at the top level: a nested `status` may be a message's, in an answer of several."""
    if not isinstance(body, dict):
        return None
    success, status = body.get("success"), body.get("status")
    if success is False or (type(success) is int and success == 0):
        return f"success: {str(success).lower()}"
    if isinstance(success, str) and success.strip().lower() in _FALSE:
        return f"success: {success.strip()!r}"
    if isinstance(status, str) and status.strip().lower() in _FAILED_STATUSES:
        return f"status: {status.strip()!r}"
    return None


def _http_status_said(body: Any) -> int | None:
    """An HTTP error status at a 2xx body's top level (`status` or `statusCode`, 400-599, a
    number or its digits), as APIs answering every request 200 (and Spring's and NestJS's error
    bodies) write it. Seed 000 shows no body: read as that error, not as an acceptance."""
    if not isinstance(body, dict):
        return None
    for key in ("status", "statusCode"):
        value = body.get(key)
        if isinstance(value, str) and len(value.strip()) == 3 and value.strip().isdigit():
            value = int(value)
        if type(value) is int and 400 <= value <= 599:
            return value
    return None


def unauthorized(response: httpx.Response) -> bool:
    """A 401, or a 2xx saying 401 in its body and holding no message id (one that does may
    have been taken): an opaque token (no `exp`) is renewed only so."""
    if response.status_code == httpx.codes.UNAUTHORIZED:
        return True
    body = json_body(response) if response.is_success else None
    return _http_status_said(body) == 401 and _message_id(_candidates(body)) is None


def _status_failure(response: httpx.Response, status: int, reason: str | None,
                    message_id: str | None) -> SendError:
    """As the HTTP status would fail (see classify_http_error): a 4xx a refusal, 408/429/503 to
    be retried, another 5xx maybe sent; and with a message id, maybe sent whatever it says."""
    not_taken = status in NOT_TAKEN_STATUSES
    maybe_sent = message_id is not None or (status >= 500 and not not_taken)
    with_id = f" with message id {message_id}" if message_id is not None else ""
    return SendError(f"Ubiqio answered HTTP {response.status_code}{with_id}, its body saying "
                     f"status {status}: {reason or 'no reason given'}",
                     retryable=maybe_sent or not_taken, code="provider_error",
                     maybe_sent=maybe_sent, throttled=status == 429)


def _candidates(body: Any) -> list[dict[str, Any]]:
    """The body and the objects nested under `data`/`result`/`message`/`messages`, where an
    id may be: an object, or the first of a list (a batch answer's shape, for the one message
    sent)."""
    if not isinstance(body, dict):
        return []
    nested = []
    for key in _NESTED_KEYS:
        value = body.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, dict):
            nested.append(value)
    return [body, *nested]


def error_text(body: Any, keys: tuple[str, ...] = _ERROR_KEYS) -> str | None:
    if not isinstance(body, dict):
        return None
    for key in keys:
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list | dict) and value:
            return str(value)[:200]
    return None
