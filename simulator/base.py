"""What every simulated provider shares: the records it keeps, the webhooks it builds, helpers.

Each provider module (Courier style, like `normalizers/` and `consumers/outbound/`) exposes the
same few names, described by `SimulatedProvider`: its routes, the account lookup from the send
request's credentials, parsing a send into `Outgoing` messages, its success and failure answers,
and the builders of its webhook bodies. The builders are pure (time comes in as an argument) so
tests can feed their output straight to the normalizers. What providers define alike is made
here once: `send_route` (routes of a lone send endpoint) and `outbound_check`.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from consumers.outbound import outbound_problems
from switchboard.accounts import Account

SendEndpoint = Callable[[Request], Awaitable[Response]]
ConfigT = TypeVar("ConfigT", bound=BaseModel)


class InboundNotSupported(ValueError):
    """The provider (or the account's channel) cannot carry what /_sim/inbound asked for."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message a provider accepted from a send request: one recipient, one provider id."""

    message_id: str
    to: str
    channel: str
    correlation_id: str | None
    # What this provider's webhook builders need later (sender, flags from the request ...).
    details: Mapping[str, Any] = field(default_factory=dict)
    # The URL the send request named for this message's status webhooks, if any: the provider
    # posts them there rather than to the account's configured URL, and adds no credentials
    # unless the request named an authentication profile (`status_url_signed`).
    status_url: str | None = None
    status_url_signed: bool = False


@dataclass(frozen=True, slots=True)
class ReceivedSend:
    """A send the simulator accepted, as recorded and as its status webhooks are built from."""

    provider: str
    account: str
    path: str
    body: Any
    message: Outgoing
    received_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The record as GET /_sim/sends shows it."""
        return {
            "provider": self.provider,
            "account": self.account,
            "path": self.path,
            "body": self.body,
            "correlation_id": self.message.correlation_id,
            "provider_message_id": self.message.message_id,
            "to": self.message.to,
            "channel": self.message.channel,
            "received_at": self.received_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Inbound:
    """An end user's message that /_sim/inbound asks a provider to report."""

    sender: str
    text: str
    message_id: str
    postback: str | None = None
    to: str | None = None  # our address; each provider defaults it from the account's config


@dataclass(frozen=True, slots=True)
class Bucket:
    """How a provider delivers several reports in one request (Infobip: up to 100 `results`).

    A report opens a bucket for its account, which goes out `max_wait_s` later or once full,
    with every report of the account that came meanwhile; one request of the bucket is in
    flight at a time. The busier the account, the fuller its requests.
    """

    name: str
    max_reports: int
    max_wait_s: float
    merge: Callable[[Sequence[bytes]], bytes]  # the bodies of single reports -> one body


@dataclass(frozen=True, slots=True)
class Webhook:
    """One webhook body a provider would POST to us; `kind` is for logs and counters."""

    kind: str
    body: bytes
    content_type: str = "application/json"
    bucket: Bucket | None = None  # None: always delivered in a request of its own

    def json(self) -> Any:
        return orjson.loads(self.body)


def webhook(kind: str, payload: Any, bucket: Bucket | None = None) -> Webhook:
    return Webhook(kind=kind, body=orjson.dumps(payload), bucket=bucket)


class SimulatedProvider(Protocol):
    """What each provider module exposes (modules satisfy this structurally)."""

    NAME: str

    def routes(self, send: SendEndpoint, accounts: Sequence[Account]) -> list[BaseRoute]:
        """Routes relative to the provider's prefix; `send` handles the send API itself."""

    def outbound_problem(self, account: Account) -> str | None:
        """Why the account's outbound table cannot be served, or None."""

    def authenticate(self, request: Request, accounts: Sequence[Account]) -> Account | Response:
        """The account whose credentials the request carries, or the provider's auth error."""

    def parse_send(self, request: Request, account: Account, body: bytes
                   ) -> list[Outgoing] | Response:
        """The accepted messages of a send request, or the provider's validation error."""

    def accepted(self, messages: Sequence[Outgoing]) -> Response:
        """The provider's success answer for the accepted messages."""

    def failure(self, status: int) -> Response:
        """The provider's answer when it fails with HTTP `status` (injected faults): that
        status on the wire, also from a provider that answers its own errors in a 2xx."""

    def rejected(self) -> Response:
        """The provider's 2xx answer that says it did not take the message (the `rejected`
        fault): what a client must not read as an acceptance."""

    def answer_2xx(self, mode: str) -> Response | None:
        """The provider's 2xx answer to a fault only some providers answer (faults'
        PROVIDER_2XX_MODES: a message already in a final status other than delivered, an
        internal error in a 2xx), or None when it gives no such answer."""

    def status_webhooks(self, send: ReceivedSend, *, at: datetime, step: timedelta
                        ) -> list[Webhook]:
        """The status lifecycle of a sent message, in the order the provider reports it."""

    def inbound_webhook(self, account: Account, inbound: Inbound, *, at: datetime) -> Webhook:
        """An inbound message webhook; raises InboundNotSupported when it cannot be carried."""


# --- accounts and credentials ----------------------------------------------------------------


class OutboundKeys(BaseModel):
    """Base of each provider's `Outbound`: the keys of `[accounts.<name>.outbound]` the
    simulator needs. Other keys (rate limits, base_url ...) are the sender's and are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def outbound_config(account: Account, model: type[ConfigT]) -> ConfigT | None:
    """The account's outbound table as `model`, or None when it does not fit."""
    try:
        return model.model_validate(account.outbound)
    except ValidationError:
        return None


def outbound_problem(account: Account, model: type[BaseModel]) -> str | None:
    try:
        model.model_validate(account.outbound)
    except ValidationError as exc:
        return outbound_problems(exc)
    return None


def outbound_check(model: type[BaseModel]) -> Callable[[Account], str | None]:
    """A provider's `outbound_problem`: every provider checks an account's outbound table
    against its `Outbound` model alone."""
    def check(account: Account) -> str | None:
        return outbound_problem(account, model)

    return check


def checked_config(account: Account, model: type[ConfigT]) -> ConfigT:
    """The outbound config of an account already known to fit `model`: the simulator serves
    only such accounts (checked at start), and `authenticate` returns no other."""
    config = outbound_config(account, model)
    assert config is not None, f"account {account.name!r} has no valid outbound config"
    return config


def matching_accounts(accounts: Iterable[Account], model: type[ConfigT],
                      matches: Callable[[ConfigT], bool]) -> list[tuple[Account, ConfigT]]:
    """The accounts whose outbound config fits `model` and `matches` (the request's
    credentials, say), each with that config, in order: every provider's `authenticate`
    starts by finding the accounts a request's credentials belong to."""
    return [(account, config) for account in accounts
            if (config := outbound_config(account, model)) is not None and matches(config)]


def authorization(request: Request, scheme: str) -> str | None:
    """The credential of an `Authorization: <scheme> <credential>` header (scheme in any case),
    or None when the header is missing, has another scheme or a blank credential."""
    given, _, credential = request.headers.get("authorization", "").partition(" ")
    if given.lower() != scheme.lower() or not credential.strip():
        return None
    return credential.strip()


def same_secret(expected: str, given: str) -> bool:
    """Constant-time comparison: even a simulator should not teach timing leaks."""
    return hmac.compare_digest(expected.encode(), given.encode())


# --- routes ----------------------------------------------------------------------------------


def send_route(path: str) -> Callable[[SendEndpoint, Sequence[Account]], list[BaseRoute]]:
    """A provider's `routes` when its API is the send endpoint alone, `POST path` (all but
    Ubiqio, which adds its token endpoint)."""
    def routes(send: SendEndpoint, accounts: Sequence[Account]) -> list[BaseRoute]:
        return [Route(path, send, methods=["POST"])]

    return routes


# --- helpers ---------------------------------------------------------------------------------


def decode_json(body: bytes) -> Any:
    """The JSON value of a request body; ValueError (with orjson's reason) when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None


def json_response(payload: Any, status_code: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code,
                    media_type="application/json", headers=dict(headers or {}))


def new_id() -> str:
    return str(uuid.uuid4())


def iso_ms(moment: datetime) -> str:
    """RFC 3339 with milliseconds and `Z` (`2024-08-09T11:08:40.500Z`), as Bird and Webex write."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def timeline(at: datetime, step: timedelta, count: int) -> list[datetime]:
    """When each of `count` successive statuses happens: `at`, `at + step`, ..."""
    return [at + step * index for index in range(count)]


def text(value: Any) -> str | None:
    """A non-empty string field, else None."""
    return value if isinstance(value, str) and value.strip() else None


def obj(value: Any) -> dict[str, Any]:
    """A JSON object field, else an empty one (absence and wrong types are checked apart)."""
    return value if isinstance(value, dict) else {}
