"""A 503 from a gateway in front of the provider: "come back later" unless the gateway says its
upstream had the request. Envoy (Istio, Contour, most API gateways built on it) answers every
failure of its own with 503, also `upstream_reset_before_response_started{connection_termination}`:
it had forwarded the request when the provider's connection ended, and the provider may have
acted on it. Sent again, the message could go twice."""

from __future__ import annotations

import httpx
import pytest

from consumers.outbound.http_errors import classify_http_error

ENVOY = "upstream connect error or disconnect/reset before headers. "


def answer(body: str, status: int = 503) -> httpx.Response:
    return httpx.Response(status, text=body, headers={"content-type": "text/plain"},
                          request=httpx.Request("POST", "https://api.provider.test/send"))


@pytest.mark.parametrize("body", [
    ENVOY + "reset reason: connection termination",
    ENVOY + "retried and the latest reset reason: connection termination",
    ENVOY + "reset reason: remote reset",
    ENVOY + "reset reason: protocol error",
    "upstream connect error or disconnect/reset before headers",  # an older Envoy: either
])
def test_a_gateway_503_after_its_upstream_had_the_request_may_have_sent_it(body: str) -> None:
    error = classify_http_error(answer(body), body)
    assert (error.code, error.maybe_sent) == ("503", True)


@pytest.mark.parametrize("body", [
    ENVOY + "reset reason: connection failure",
    ENVOY + "reset reason: remote connection failure, transport failure reason: delayed "
            "connect error: 111",
    ENVOY + "reset reason: connection timeout",
    ENVOY + "reset reason: overflow",
    "no healthy upstream",  # Envoy without a provider to send to
    "Service Unavailable",
    '{"error": "busy"}',
])
def test_a_503_that_never_reached_the_provider_is_retried(body: str) -> None:
    error = classify_http_error(answer(body), body)
    assert (error.code, error.retryable, error.maybe_sent) == ("503", True, False)


def test_a_repeatable_request_may_be_repeated_after_any_503() -> None:
    body = ENVOY + "reset reason: connection termination"
    error = classify_http_error(answer(body), body, idempotent=True)
    assert (error.retryable, error.maybe_sent) == (True, False)


@pytest.mark.parametrize("reason", ["connection failure", "remote connection failure",
                                    "connection timeout", "overflow"])
def test_a_gateway_503_after_its_own_retries_names_only_the_last_attempt(reason: str) -> None:
    # Envoy retrying (retry_on 5xx or reset; or a 503 an inner proxy gave) names the last attempt's
    # reason only: an earlier one may have ended after passing the request on, and the
    # provider acted on it. Sent again, the message could go twice.
    body = ENVOY + f"retried and the latest reset reason: {reason}"
    error = classify_http_error(answer(body), body)
    assert (error.code, error.maybe_sent) == ("503", True)
