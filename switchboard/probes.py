"""What ingest and the workers answer on their probe paths and when they refuse, so both
speak alike.

`/healthz` answers `{"status": "ok"}`, `/readyz` `{"status": "ready"}`, and either one with a
problem 503 `{"status": "unavailable", "reason": ...}`. An unknown path or method gets the
JSON error every other refusal has (`error_body`): `{"error": "http_error", "message":
"Not Found"}`.
"""

from __future__ import annotations

from http import HTTPStatus

HEALTHZ = "/healthz"
READYZ = "/readyz"
METRICS = "/metrics"
PROBE_METHODS = ("GET", "HEAD")


def probe_answer(path: str, problem: str | None) -> tuple[int, dict[str, str]]:
    """The status code and JSON body of `/healthz` or `/readyz` given its problem, if any."""
    if problem:
        return 503, {"status": "unavailable", "reason": problem}
    return 200, {"status": "ok" if path == HEALTHZ else "ready"}


def error_body(code: str, message: str) -> dict[str, str]:
    """The JSON body of every refusal ingest and the workers give: one shape for clients."""
    return {"error": code, "message": message}


def http_error(status: int, message: str | None = None) -> dict[str, str]:
    """The JSON body of a 404 or 405 (the message is the status's phrase unless given)."""
    return error_body("http_error", message or HTTPStatus(status).phrase)
