"""Injected faults on the wire: an HTTP-level fault is that HTTP status from every provider, so
a client reads it as it would read the real one (a 503 is retried); a provider's own error in
a 2xx is a fault of its own, `internal_error_2xx` (Webex's code 7006 in an HTTP 200)."""

from __future__ import annotations

import httpx
import pytest

from consumers.outbound import SendError
from simulator.app import SIMULATED
from switchboard.providers import PROVIDERS, provider_module
from tests.unit.test_simulator import add_fault, recorded, send_ok, sim, sim_app

__all__ = ["sim", "sim_app"]  # the fixtures, used by name

HTTP_FAULTS = [("http_400", 400), ("http_429", 429), ("http_500", 500), ("http_503", 503)]


def _read(provider: str, answer: httpx.Response) -> SendError:
    """How the provider's client reads an answer it refuses."""
    with pytest.raises(SendError) as caught:
        provider_module("consumers.outbound", provider).read_response(answer)
    return caught.value


def _as_received(provider: str, status: int) -> httpx.Response:
    answer = SIMULATED[provider].failure(status)
    return httpx.Response(answer.status_code, headers=answer.headers.raw,
                          content=bytes(answer.body))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("mode", "status"), HTTP_FAULTS)
async def test_an_http_fault_is_its_status_on_the_wire(sim: httpx.AsyncClient, provider: str,
                                                       mode: str, status: int) -> None:
    await add_fault(sim, provider=provider, mode=mode)
    response = await send_ok(sim, provider)
    assert response.status_code == status, response.text
    assert await recorded(sim) == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_timeout_fault_ends_in_a_504(sim: httpx.AsyncClient, provider: str) -> None:
    await add_fault(sim, provider=provider, mode="timeout", delay_s=0)
    response = await send_ok(sim, provider)
    assert response.status_code == 504, response.text
    assert await recorded(sim) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_sender_retries_each_providers_503_and_holds_back_after_a_500(
        provider: str) -> None:
    # A 503 says the request was not acted on; a 500 may come after the message was taken.
    unavailable = _read(provider, _as_received(provider, 503))
    assert (unavailable.retryable, unavailable.maybe_sent) == (True, False)
    internal = _read(provider, _as_received(provider, 500))
    assert internal.maybe_sent is True


async def test_webex_internal_error_fault_is_code_7006_in_an_http_200(
        sim: httpx.AsyncClient) -> None:
    await add_fault(sim, provider="webex", mode="internal_error_2xx", count=1)
    response = await send_ok(sim, "webex")
    assert response.status_code == 200
    assert response.json()["response"]["code"] == "7006"
    assert await recorded(sim) == []
    error = _read("webex", response)
    assert (error.code, error.retryable, error.maybe_sent) == ("7006", True, True)
    assert (await send_ok(sim, "webex")).json()["response"][0]["code"] == "1001"


@pytest.mark.parametrize(("mode", "able"), [("expired", "infobip, infobip-omnichat"),
                                            ("internal_error_2xx", "webex")])
@pytest.mark.parametrize("spec", [{"provider": "bird"}, {"account": "bird"}, {}],
                         ids=["provider", "account", "any-provider"])
async def test_a_fault_only_some_providers_answer_is_refused_where_it_could_reach_another(
        sim: httpx.AsyncClient, mode: str, able: str, spec: dict[str, str]) -> None:
    # It would fire on a send whose provider has no such answer.
    refused = await sim.post("/_sim/faults", json={"mode": mode, **spec})
    assert refused.status_code == 400
    assert f"only {able} give" in refused.json()["message"]
    assert (await sim.get("/_sim/faults")).json() == {"faults": []}
