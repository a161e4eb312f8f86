"""Every provider has its module in every layer, found by name alone (switchboard.providers):
a provider missing a module, or a module answering to another name, fails here rather than in
the first request that reaches it."""

from __future__ import annotations

from pathlib import Path

import pytest

from normalizers import NormalizeError, get
from switchboard.providers import PROVIDERS, UnknownProvider, provider_module
from tests.fixtures import FIXTURES

PROVIDER_DOCS = Path(__file__).parent.parent.parent / "docs" / "providers"
# What each layer needs of a provider's module (the layers' Protocols name the same).
LAYERS = {
    "normalizers": ("NAME", "normalize", "acknowledge"),
    "consumers.outbound": ("NAME", "Config", "Client"),
    "simulator": ("NAME", "routes", "outbound_problem", "authenticate", "parse_send",
                  "accepted", "failure", "status_webhooks", "inbound_webhook"),
}


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_has_a_module_in_each_layer(layer: str, provider: str) -> None:
    module = provider_module(layer, provider)
    assert provider == module.NAME
    missing = [name for name in LAYERS[layer] if not hasattr(module, name)]
    assert not missing, f"{module.__name__} lacks {missing}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_has_its_fixtures_and_its_page(provider: str) -> None:
    assert sorted((FIXTURES / provider).glob("*.json")), f"no fixtures for {provider}"
    assert (PROVIDER_DOCS / f"{provider}.md").is_file(), f"no docs/providers/{provider}.md"


@pytest.mark.parametrize("name", ["base", "registry", "transport", "app", "os.path", "..x", ""])
def test_only_listed_providers_are_imported(name: str) -> None:
    """A provider name comes from a URL or an accounts file: the shared modules of a layer
    (normalizers.base, simulator.app) must not pass for providers."""
    with pytest.raises(UnknownProvider, match="known: infobip"):
        provider_module("normalizers", name)
    with pytest.raises(NormalizeError, match="unknown provider"):
        get(name)
