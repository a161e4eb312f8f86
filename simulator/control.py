"""The simulator's own answers, apart from its handlers: the control endpoints it lists on
`GET /` and in every 404, its error bodies, and the reading of a `/_sim/inbound` request.

Every refusal of the control API is `{"error": <code>, "message": <what is wrong and what to
do>}`, the shape ingest and the workers refuse with (switchboard.probes.error_body), so a script
reads one shape wherever it calls. The provider imitations keep their providers' own shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from simulator.base import Inbound, json_response, new_id
from switchboard.accounts import Account
from switchboard.probes import error_body, http_error
from switchboard.throttle import ThrottledLog

Endpoint = Callable[[Request], Awaitable[Response]]

# (method, path, what it does): GET / lists them, a 404 names them, the routes follow them.
CONTROL_ENDPOINTS: tuple[tuple[str, str, str], ...] = (
    ("GET", "/", "this index"),
    ("GET", "/_sim/sends", "the sends accepted (the last 100,000), oldest first; ?account= "
                           "or ?provider= narrows them"),
    ("DELETE", "/_sim/sends", "forget the sends accepted"),
    ("POST", "/_sim/inbound", "an end user writes to an account: {account, from, text, "
                              "postback?, to?}; its provider's webhook is posted to ingest"),
    ("POST", "/_sim/faults", "fail an account's or a provider's next sends: {mode, count?, "
                             "account? or provider?, retry_after_s?, delay_s?}"),
    ("GET", "/_sim/faults", "the faults not used up yet"),
    ("DELETE", "/_sim/faults", "remove every fault"),
    ("GET", "/_sim/webhooks", "webhooks sent back to ingest, retried, dropped, pending"),
    ("GET", "/_sim/health", "the accounts served, webhook-only ones, and outbound tables it "
                            "cannot serve"),
)
INBOUND_FIELDS = "{account, from, text, postback?, to?}"
FAULT_FIELDS = "{mode, count?, account? or provider?, retry_after_s?, delay_s?}"
# Names listed in an "unknown name" message, at most: enough to spot a misspelling.
_NAMES_SHOWN = 20


def control_error(status: int, code: str, message: str) -> Response:
    return json_response(error_body(code, message), status)


def unknown_account(name: str, accounts: Iterable[Account]) -> Response:
    """404 naming the accounts there are: a misspelt name is seen at once."""
    return control_error(404, "unknown_account",
                         f"no account {name!r}; accounts: {_names(a.name for a in accounts)} "
                         "(GET /_sim/health lists them with their providers)")


def unknown_provider(name: str, providers: Iterable[str]) -> Response:
    return control_error(400, "unknown_provider",
                         f"unknown provider {name!r}; providers: {_names(providers)}")


def index(request: Request, accounts: Sequence[Account], routes: Sequence[BaseRoute],
          ingest_url: str | None) -> dict[str, Any]:
    """`GET /`: what this is, its control endpoints, and per account the provider paths it
    imitates, under the `base_url` to give that account's outbound table."""
    paths = _provider_paths(routes)
    base = str(request.base_url).rstrip("/")
    return {
        "service": "switchboard provider simulator",
        "about": "stands in for the providers' send APIs of the accounts below: a send is "
                 "answered as its provider would, recorded, and its status webhooks are "
                 "posted to ingest; /_sim/... controls it",
        "ingest_url": ingest_url,
        "control": {f"{method} {path}": what for method, path, what in CONTROL_ENDPOINTS},
        "accounts": [{"name": a.name, "provider": a.provider,
                      "base_url": f"{base}/{a.provider}", "paths": paths.get(a.provider, [])}
                     for a in accounts if a.outbound],
        # No outbound table: nothing to send through the simulator for them.
        "webhook_only": [{"name": a.name, "provider": a.provider}
                         for a in accounts if not a.outbound],
    }


async def no_such_endpoint(request: Request, exc: Exception) -> Response:
    """Starlette's 404 and 405, in plain text ("Not Found" of a mistyped /_sim/send), as JSON
    naming the request and what is served."""
    assert isinstance(exc, HTTPException)
    served = ", ".join(dict.fromkeys(path for _, path, _ in CONTROL_ENDPOINTS if path != "/"))
    message = (f"{exc.detail}: {request.method} {request.url.path}; served: {served}, and each "
               "provider's API under /<provider> (GET / lists them, with each account's paths)")
    return json_response(http_error(exc.status_code, message), exc.status_code, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug's 500 on the simulator's own endpoints, as JSON like their other answers
    (Starlette's is plain text); the exception goes on to uvicorn, which logs it. A provider
    path keeps Starlette's plain 500: those imitate each provider's answers."""
    if request.url.path != "/" and not request.url.path.startswith("/_sim/"):
        return PlainTextResponse("Internal Server Error", 500)
    return control_error(500, "internal_error", "the simulator failed on this request (its log "
                         "has the error); what it did of it is unknown: check before retrying")


def logged(endpoint: Endpoint, refusals: ThrottledLog) -> Endpoint:
    """`endpoint`, its refusals logged: the simulator keeps no access log, so a script that
    dropped the answer left no trace of why its /_sim call did nothing."""
    async def answer(request: Request) -> Response:
        response = await endpoint(request)
        if response.status_code >= 400:
            log_refusal(refusals, request, response)
        return response

    return answer


def log_refusal(refusals: ThrottledLog, request: Request, response: Response) -> None:
    """One line per kind (status, code, path) a minute, then how many more: a script in a loop
    or a scanner does not flood the log."""
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        body = {}
    refusals(logging.INFO, "simulator request refused",
             {"status": response.status_code, "error": body.get("error"),
              "path": request.url.path}, method=request.method, message=body.get("message"))


def inbound_request(payload: Any) -> tuple[str, Inbound] | str:
    """(account name, message) from a /_sim/inbound body, or what is wrong with it."""
    if not isinstance(payload, dict):
        return f"expected a JSON object {INBOUND_FIELDS}"
    # Refused, as /_sim/faults refuses them: a "channel" or a misspelt "payload" was dropped,
    # and the message went out on the account's channel, without its button.
    if unknown := sorted(set(payload) - {"account", "from", "text", "postback", "to"}):
        return (f"unknown field {', '.join(map(repr, unknown))}: it takes account, from, text, "
                "postback and to (the message comes on the account's channel)")
    fields = {key: payload.get(key) for key in ("account", "from", "text")}
    missing = [key for key, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        return f"missing or empty: {', '.join(missing)}; it takes {INBOUND_FIELDS}, strings"
    for key in ("postback", "to"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            return f"{key!r} must be a string"
    inbound = Inbound(sender=payload["from"], text=payload["text"], message_id=new_id(),
                      postback=payload.get("postback"), to=payload.get("to"))
    return payload["account"], inbound


def _provider_paths(routes: Sequence[BaseRoute]) -> Mapping[str, list[str]]:
    """`METHOD /<provider>/<path>` of each provider's mounted routes, by provider name."""
    found: dict[str, list[str]] = {}
    for mount in routes:
        if not isinstance(mount, Mount):
            continue
        found[mount.path.strip("/")] = [
            f"{method} {mount.path}{route.path}" for route in mount.routes
            if isinstance(route, Route) for method in sorted((route.methods or set()) - {"HEAD"})]
    return found


def _names(names: Iterable[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:_NAMES_SHOWN]) or "none"
    more = len(ordered) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


__all__ = ["CONTROL_ENDPOINTS", "control_error", "inbound_request", "index", "log_refusal",
           "logged",
           "no_such_endpoint", "server_error", "unknown_account", "unknown_provider"]
