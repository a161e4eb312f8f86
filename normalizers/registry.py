"""Finds a provider's normalizer (`normalizers.<provider>`, see switchboard.providers) and calls
it so that only NormalizeError escapes."""

from __future__ import annotations

import functools
from typing import Protocol, cast

from normalizers.base import Ack, Normalized, NormalizeError, WebhookRequest
from switchboard.events import MessageEvent
from switchboard.providers import PROVIDERS, UnknownProvider, provider_module


class ProviderNormalizer(Protocol):
    """What every provider module exposes."""

    NAME: str

    def normalize(self, request: WebhookRequest) -> list[MessageEvent]:
        """Turn one webhook into zero or more events, or raise NormalizeError. A provider whose
        answer depends on the body returns a Normalized carrying it, so the body is read once."""

    def acknowledge(self, request: WebhookRequest) -> Ack:
        """The success answer this provider expects for this webhook: what ingest answers a
        plain list of events with, and a repeat of a stored webhook (not normalized again)."""


@functools.cache
def get(provider: str) -> ProviderNormalizer:
    try:
        return cast(ProviderNormalizer, provider_module("normalizers", provider))
    except UnknownProvider as exc:
        raise NormalizeError(str(exc)) from None


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    """Normalize with the request's provider; only NormalizeError escapes, never a crash."""
    normalizer = get(request.provider)
    try:
        return normalizer.normalize(request)
    except NormalizeError:
        raise
    except Exception as exc:
        # A normalizer bug or a shape we did not foresee: still a typed, explained error; the
        # original stays as __cause__. Named by type only: the reason is logged, and an
        # exception's text may quote the payload (pydantic's input_value=, a phone number).
        raise NormalizeError(f"unexpected {request.provider} payload: the normalizer raised "
                             f"{type(exc).__name__}") from exc


def acknowledgement(request: WebhookRequest, events: list[MessageEvent]) -> Ack:
    """The success answer for a webhook `normalize` read as `events`: the one it gave with them
    (a Normalized), else the provider's for the request (a constant, for most)."""
    if isinstance(events, Normalized):
        return events.ack
    return get(request.provider).acknowledge(request)


@functools.cache
def opt_out_error_codes(provider: str, channel: str) -> frozenset[str]:
    """Error codes of the provider's status reports on `channel` that mean the contact opted
    out at the provider (sent STOP to the number there): the bots then record the opt-out
    too. A module's OPT_OUT_CHANNELS, if any, limits its codes to those channels (providers
    that number errors per product). None for a provider this version does not know (events
    written by a newer one): the bots must not fail on its reports."""
    if provider not in PROVIDERS:
        return frozenset()
    module = get(provider)
    channels = getattr(module, "OPT_OUT_CHANNELS", None)
    if channels is not None and channel not in channels:
        return frozenset()
    return frozenset(getattr(module, "OPT_OUT_ERROR_CODES", frozenset()))


def echoes_correlation(provider: str) -> bool:
    """Whether the provider's reports carry our reference (most do; Omnichat does not)."""
    return bool(getattr(get(provider), "ECHOES_CORRELATION", True))
