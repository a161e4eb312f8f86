"""Outbound provider clients: `consumers.outbound.<provider>` (see switchboard.providers)."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from consumers.outbound.base import OutboundClient, SendContext, SendError, SendReceipt
from switchboard.logs import register_secrets
from switchboard.providers import provider_module


class OutboundConfigError(ValueError):
    """An account's outbound table does not fit its provider. The message names the keys and
    what is wrong with them, never their values (pydantic's own message quotes the input,
    and a misspelt `api_key` is still a secret)."""


def outbound_problems(exc: ValidationError) -> str:
    """What is wrong with an account's outbound table, by key, without the values given
    (they may be secrets)."""
    return "; ".join(f"outbound.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                     for error in exc.errors(include_input=False))


def build_client(provider: str, outbound: dict[str, Any], http: httpx.AsyncClient,
                 context: SendContext) -> OutboundClient:
    """The client for one account, its outbound config validated (OutboundConfigError)."""
    module = provider_module("consumers.outbound", provider)
    try:
        config = module.Config.model_validate(outbound)
    except ValidationError as exc:
        raise OutboundConfigError(outbound_problems(exc)) from None
    register_secrets(value.get_secret_value() for value in dict(config).values()
                     if isinstance(value, SecretStr))
    client: OutboundClient = module.Client(config, http, context)
    return client


__all__ = ["OutboundClient", "OutboundConfigError", "SendContext", "SendError", "SendReceipt",
           "build_client", "outbound_problems"]
