"""Pure functions that turn provider webhooks into Switchboard message events."""

from normalizers.base import Ack, NormalizeError, WebhookRequest
from normalizers.registry import get, normalize

__all__ = ["Ack", "NormalizeError", "WebhookRequest", "get", "normalize"]
