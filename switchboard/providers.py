"""The providers Switchboard speaks to, and where each one's code lives.

Courier's rule, with our layers: a provider has one module in each layer that handles it, all
named after it, so that no table has to be kept in step by hand: its normalizer
(`normalizers.<module>`), its outbound client (`consumers.outbound.<module>`) and its simulated
send API (`simulator.<module>`), where `<module>` is the name with `-` as `_`. Adding a provider
adds its name here, those three modules and its fixture folder (`tests/fixtures/<name>/`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

PROVIDERS = ("infobip", "infobip-omnichat", "bird", "webex", "ubiqio")


class UnknownProvider(LookupError):
    """A provider name not in PROVIDERS; the message lists the known ones."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"unknown provider {provider[:40]!r}; known: {', '.join(PROVIDERS)}")


def provider_module(layer: str, provider: str) -> ModuleType:
    """The provider's module in a layer (a package such as `normalizers`)."""
    if provider not in PROVIDERS:  # never import a module named by whoever sent a name
        raise UnknownProvider(provider)
    return importlib.import_module(f"{layer}.{provider.replace('-', '_')}")


__all__ = ["PROVIDERS", "UnknownProvider", "provider_module"]
