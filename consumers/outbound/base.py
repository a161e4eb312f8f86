"""What every outbound provider client shares: the interface, its errors and its config.

One module per provider (Courier style) exposes `NAME`, a pydantic `Config` for the account's
`[accounts.<name>.outbound]` table, and `Client(config, http, context)` implementing `send`.
Clients translate a command into the provider's send API call and classify every failure as
retryable (timeouts, 5xx, 429) or permanent (validation, auth): the sender decides on retries.
A 2xx that is a web page is no send API's answer, whatever a client would read from it: the
rate-limited POST every client makes fails it (`bad_response`, maybe sent). Nor is a 2xx without
what the provider's documents say its every acceptance carries (`no_acceptance`).

The rest they share, by theme: `provider_client` (their base class and its POST), `limits` (the
rate limit, holds, stopping), `http_errors` (a failed call as a SendError), `responses`
(reading answers), `content` (building requests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from switchboard.accounts import Account
from switchboard.commands import OutboundCommand
from switchboard.logs import scrub
from switchboard.urls import http_url


class SendError(Exception):
    """A send failed. `retryable` tells the sender whether trying again can help; `called`
    whether the provider was called at all (results count attempts as provider calls);
    `maybe_sent` that the provider may have taken the message all the same (a timeout after
    the request went out, a 500 or a gateway's 502/504): sending it again could send it twice,
    so the sender does not, whatever `retryable` says. `throttled`: the provider refused it for
    the account's rate (a 429, Webex's 7020), so the account's other sends wait too.
    `permanent`, for the result: that sending the message again cannot succeed; by default
    when the sender does not retry it, but a refusal the user can lift (credit spent) is
    neither retried within seconds nor permanent."""

    def __init__(self, description: str, *, retryable: bool, code: str | None = None,
                 retry_after_s: float | None = None, called: bool = True,
                 maybe_sent: bool = False, throttled: bool = False,
                 permanent: bool | None = None) -> None:
        # Masked here, where every send failure is described: provider texts go into results
        # on Kafka (not a log line, so not masked there), and a provider may quote the key or
        # the Authorization header it was given back in its refusal.
        description = scrub(description)
        super().__init__(description)
        self.description = description
        self.retryable = retryable
        self.code = code
        self.retry_after_s = retry_after_s
        self.throttled = throttled
        self.called = called
        self.maybe_sent = maybe_sent
        self.permanent = not retryable if permanent is None else permanent


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """The provider accepted the message; status webhooks will follow for this id."""

    provider_message_id: str | None
    provider_status: str | None = None


@dataclass(frozen=True, slots=True)
class SendContext:
    """What a client needs from Switchboard besides its own config."""

    account: str
    # Where the provider should send this account's status webhooks, or None. Providers add no
    # credentials to a URL given with a message, so it must carry them itself: it has the
    # account's token when its webhooks authenticate by token, and is None for other schemes
    # (the webhook configured at the provider, with its credentials, then reports).
    webhook_url: str | None
    # The account's ingest URL as is, for a provider that adds credentials of its own to a
    # per-message URL when told to (Webex's notifyurlAuthId).
    plain_webhook_url: str | None = None

    @classmethod
    def for_account(cls, account: Account, public_url: str | None) -> SendContext:
        if public_url is None:
            return cls(account=account.name, webhook_url=None)
        plain = f"{public_url.rstrip('/')}/webhooks/{account.provider}/{quote(account.name)}"
        auth = account.auth
        if auth.scheme != "token":
            return cls(account=account.name, webhook_url=None, plain_webhook_url=plain)
        query = urlencode({auth.query_param: auth.secret_values()[0]})
        return cls(account=account.name, webhook_url=f"{plain}?{query}", plain_webhook_url=plain)


class OutboundConfig(BaseModel):
    """Options every provider's outbound config accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # The secrets this provider's client puts into an HTTP header as they are (not encoded).
    header_secrets: ClassVar[frozenset[str]] = frozenset()

    base_url: str
    timeout_s: float = Field(default=10.0, gt=0)
    rate_per_s: float = Field(default=20.0, gt=0, description="sustained sends per second")
    burst: int = Field(default=20, ge=1)
    channel: str = "sms"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """Checked at start: httpx would refuse every request, and the failure read as one
        the provider may have taken."""
        http_url(value, "https://api.example.com")
        return value

    @field_validator("*")
    @classmethod
    def _secret_fits_a_request(cls, value: Any, info: ValidationInfo) -> Any:
        """A secret read with its file's newline cannot go into a header: every send would
        fail before leaving, reported as possibly sent. Nor can one with other than ASCII
        (httpx encodes header values as ASCII); a secret that is encoded first may."""
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if not secret.isprintable():
                raise ValueError("has control characters (a newline from the file or variable "
                                 "it was read from?)")
            if info.field_name in cls.header_secrets and not secret.isascii():
                raise ValueError("has characters other than ASCII, which an HTTP header cannot "
                                 "carry (a quote or dash pasted from a document?)")
        return value


ConfigT = TypeVar("ConfigT", bound=OutboundConfig)


def account_channel(account: Account) -> str:
    """The channel of an account's commands that name none: its `outbound.channel`, else the
    default of every provider's outbound config."""
    channel = account.outbound.get("channel")
    return channel if isinstance(channel, str) else OutboundConfig.model_fields["channel"].default


class OutboundClient(Protocol):
    async def send(self, command: OutboundCommand) -> SendReceipt:
        """Send one command; raise SendError on failure."""

