"""Pure functions that turn provider webhooks into Switchboard message events."""

from normalizers.base import Ack, NormalizeError, WebhookRequest
from normalizers.registry import get, normalize, provider_names

__all__ = ["Ack", "NormalizeError", "WebhookRequest", "get", "normalize", "provider_names"]
