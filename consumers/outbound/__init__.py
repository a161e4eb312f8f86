"""Outbound provider clients: one module per provider, looked up by provider name."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
from pydantic import SecretStr

from consumers.outbound.base import OutboundClient, SendContext, SendError, SendReceipt
from switchboard.logs import register_secrets

_MODULES = {
    "infobip": "consumers.outbound.infobip",
    "infobip-omnichat": "consumers.outbound.infobip_omnichat",
    "bird": "consumers.outbound.bird",
    "webex": "consumers.outbound.webex",
    "ubiqio": "consumers.outbound.ubiqio",
}


def build_client(provider: str, outbound: dict[str, Any], http: httpx.AsyncClient,
                 context: SendContext) -> OutboundClient:
    """The client for one account, its outbound config validated (ValueError if invalid)."""
    module = importlib.import_module(_MODULES[provider])
    config = module.Config.model_validate(outbound)
    register_secrets(value.get_secret_value() for value in dict(config).values()
                     if isinstance(value, SecretStr))
    client: OutboundClient = module.Client(config, http, context)
    return client


__all__ = ["OutboundClient", "SendContext", "SendError", "SendReceipt", "build_client"]
