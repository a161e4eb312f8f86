"""Accounts: who may call which webhook URL, and how their requests are authenticated.

Loaded from a TOML file (`SWITCHBOARD_ACCOUNTS_FILE`); see `examples/accounts.toml`. A secret
may be written inline or as `env:VARIABLE` to read it from the environment, which keeps
secrets out of files that get copied around.
"""

from __future__ import annotations

import base64
import functools
import os
import tomllib
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from switchboard.logs import register_secrets
from switchboard.providers import PROVIDERS, UnknownProvider
from switchboard.validation import unreadable, validation_problems

ENV_PREFIX = "env:"
# Shorter secrets are typos or placeholders (an empty one would let anyone in), not secrets.
MIN_SECRET_CHARS = 8


class AccountsError(ValueError):
    """The accounts file is invalid; the message names the file, the account and the problem."""


def _resolve_secret(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        resolved = os.environ.get(name)
        if not resolved:
            raise ValueError(f"environment variable {name} is not set")
        return resolved
    return value


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]

AuthScheme = Literal[
    "basic",
    "token",
    "bird-signature",
    "messagebird-jwt",
    "messagebird-v1",
    "standard-webhooks",
    "hub-signature",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthConfig(_Strict):
    """How one account's webhooks prove where they come from.

    `secrets` holds one or two active secrets: during a rotation both are accepted.
    """

    scheme: AuthScheme
    secrets: list[Secret] = Field(min_length=1, max_length=2)
    username: str | None = None  # basic
    header: str = "x-switchboard-token"  # token: header name ...
    query_param: str = "token"  # ... or query parameter carrying the token
    max_age_s: int = Field(default=86_400, ge=1)  # signed-timestamp schemes: replay window
    public_url: str | None = None  # URL the provider signs, when behind a proxy

    @field_validator("header")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("secrets")
    @classmethod
    def _usable(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            if len(secret.get_secret_value().strip()) < MIN_SECRET_CHARS:
                raise ValueError(f"a secret needs at least {MIN_SECRET_CHARS} characters "
                                 "(an empty or short one would let anyone in)")
        return secrets

    @model_validator(mode="after")
    def _basic_has_username(self) -> AuthConfig:
        """Basic credentials always name a user: without one every request would be refused."""
        if self.scheme == "basic" and not self.username:
            raise ValueError("the basic scheme needs a username")
        return self

    @model_validator(mode="after")
    def _keys_decode(self) -> AuthConfig:
        """Standard Webhooks keys are base64: a bad one found per request would fail every
        request, and before the other secret of a rotation is tried."""
        if self.scheme == "standard-webhooks":
            self.signing_keys()
        return self

    def secret_values(self) -> list[str]:
        return [secret.get_secret_value() for secret in self.secrets]

    def signing_keys(self) -> list[bytes]:
        """The secrets of a standard-webhooks account as the keys they encode (ValueError if
        one does not; checked when the account is loaded)."""
        return [_webhook_key(secret) for secret in self.secret_values()]


@functools.lru_cache(maxsize=1024)  # decoded once, not per request; keyed by the secret itself
def _webhook_key(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise ValueError("a standard-webhooks secret must be base64 after 'whsec_'") from None
    if len(key) < MIN_SECRET_CHARS:
        raise ValueError(f"a standard-webhooks key needs at least {MIN_SECRET_CHARS} bytes")
    return key


class Account(_Strict):
    name: str
    provider: str
    auth: AuthConfig
    # Validated by the provider's outbound client (consumers/outbound/<provider>.py).
    outbound: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _reachable_name(cls, value: str) -> str:
        # The name is a path segment of the webhook URL, which the router splits at '/'
        # after decoding: such an account would load and never receive a webhook.
        if not value or "/" in value or not value.isprintable():
            raise ValueError("an account name must be non-empty, without '/' or control "
                             "characters: it is a path segment of the webhook URL")
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(str(UnknownProvider(value)))
        return value


def nfc_name(name: str) -> str:
    """The form an account name's spellings share (NFC): the bots' rules look names up so too."""
    return unicodedata.normalize("NFC", name)


class Accounts:
    """Accounts by name, as the ingest routes and the sender look them up.

    A name with accents may be written composed (`é`, NFC) in one place and decomposed (`e` and
    a combining accent, NFD) in another: macOS file names, some editors, a provider's URL form.
    Both reach the same account; two names that differ only so are refused at load.
    """

    def __init__(self, accounts: list[Account]) -> None:
        self._by_name = {account.name: account for account in accounts}
        self._by_nfc: dict[str, Account] = {}
        for account in accounts:
            same = self._by_nfc.setdefault(nfc_name(account.name), account)
            if same is not account:
                raise AccountsError(
                    f"accounts {same.name!a} and {account.name!a} are the same name "
                    "once Unicode-normalized (NFC): a webhook URL could not tell them apart; "
                    "rename one")

    def get(self, provider: str, name: str) -> Account | None:
        account = self._lookup(name)
        return account if account is not None and account.provider == provider else None

    def by_name(self, name: str) -> Account | None:
        """The account a command names (the sender, `switchboard send`), in either form."""
        return self._lookup(name)

    def _lookup(self, name: str) -> Account | None:
        account = self._by_name.get(name)
        if account is None and not name.isascii():
            # Only on a miss: the name as configured costs nothing more.
            account = self._by_nfc.get(nfc_name(name))
        return account

    def __iter__(self) -> Any:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


def parse_accounts(data: dict[str, Any], source: str = "<accounts>") -> Accounts:
    if unknown := sorted(key for key in data if key != "accounts"):
        # `[account.x]` or `[Accounts.x]` beside the real accounts was read as nothing: its
        # account was missing, and its webhooks answered 404, without a word at start.
        raise AccountsError(f"{source}: unknown top-level "
                            f"{'key' if len(unknown) == 1 else 'keys'} "
                            f"{', '.join(map(repr, unknown))}: the file holds only "
                            "[accounts.<name>] tables")
    table = data.get("accounts", {})
    if not isinstance(table, dict):
        raise AccountsError(f"{source}: [accounts] must be a table of accounts")
    accounts = []
    for name, fields in table.items():
        if not isinstance(fields, dict):
            raise AccountsError(f"{source}: account {name!r} must be a table")
        try:
            account = Account.model_validate({"name": name, **fields})
        except ValidationError as exc:
            problems = validation_problems(exc, "account")
            raise AccountsError(f"{source}: account {name!r}: {problems}") from None
        register_secrets(account.auth.secret_values())
        accounts.append(account)
    try:
        return Accounts(accounts)
    except AccountsError as exc:
        raise AccountsError(f"{source}: {exc}") from None


def load_accounts(path: Path) -> Accounts:
    try:
        # utf-8-sig: Notepad starts the file with a byte order mark, which tomllib refuses
        # as "Invalid statement (at line 1, column 1)", naming nothing to fix.
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise AccountsError(f"accounts file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, not UTF-8
        raise AccountsError(f"accounts file {path}: cannot read it: {unreadable(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsError(f"{path}: not valid TOML: {exc}") from None
    accounts = parse_accounts(data, str(path))
    if len(accounts) == 0:  # every webhook would be answered 404, every command refused
        raise AccountsError(f"{path}: no accounts: each is a table [accounts.<name>] (see "
                            "examples/accounts.toml)")
    return accounts
