"""The simulator's Starlette app: five provider send APIs plus a `/_sim` control API.

Each provider is served under `/<provider>` (an account's `outbound.base_url` is e.g.
`http://127.0.0.1:8090/infobip`). A send is authenticated with the provider's own scheme, may
be hit by an injected fault, is validated, recorded, answered in the provider's shape, and its
status webhooks are queued for ingest. Control endpoints:

* `GET /_sim/sends[?account=&provider=]`, `DELETE /_sim/sends`: what was accepted.
* `POST /_sim/inbound {account, from, text, postback?, to?}`: an end user writes to us.
* `POST|GET|DELETE /_sim/faults`: fail the next N sends (see simulator.faults), also with a
  2xx that refuses them (`rejected`) or, from Infobip, whose message has a final UNDELIVERABLE
  or EXPIRED status (`undeliverable`, `expired`), or Webex's internal error in an HTTP 200
  (`internal_error_2xx`). The `http_*` modes are those statuses on the wire from every provider.
* `GET /_sim/webhooks`: webhooks sent, failed (dropped), retried, skipped, queue_full (of the
  failed, dropped as the queue of jobs, or a host's share of it, was full), connections_busy
  (of the failed, dropped after waiting too long for a connection to a URL a send named),
  pending (jobs), queue_limit.
* `GET /_sim/health`: the accounts served, any outbound tables that cannot be, and apart the
  webhook-only accounts (no outbound table: nothing to send for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from simulator.base import (
    Inbound,
    InboundNotSupported,
    ReceivedSend,
    SendEndpoint,
    SimulatedProvider,
    decode_json,
    json_response,
    new_id,
)
from simulator.faults import HTTP_STATUS, PROVIDER_2XX_MODES, Fault, FaultBook, FaultSpec
from simulator.recorder import SendRecorder
from simulator.webhooks import WEBHOOK_QUEUE_LIMIT, Job, RetryPolicy, WebhookDispatcher
from switchboard.accounts import Account, Accounts
from switchboard.logs import get_logger, scrub
from switchboard.providers import PROVIDERS, provider_module
from switchboard.settings import validation_problems

log = get_logger(__name__)

# Each provider's simulated send API, by provider name.
SIMULATED: dict[str, SimulatedProvider] = {
    name: cast(SimulatedProvider, provider_module("simulator", name)) for name in PROVIDERS
}
# How often a "timeout" fault checks whether the client has gone away.
_DISCONNECT_POLL_S = 0.25


class Simulator:
    """The state behind the app: accounts, recorded sends, faults and the webhook queue."""

    def __init__(self, accounts: Accounts, dispatcher: WebhookDispatcher,
                 status_delay_s: float) -> None:
        self.accounts: list[Account] = list(accounts)
        self.dispatcher = dispatcher
        self.status_delay_s = status_delay_s
        self.recorder = SendRecorder()
        self.faults = FaultBook()

    def served(self, provider: str) -> list[Account]:
        return [account for account in self.accounts if account.provider == provider]

    def problems(self) -> dict[str, str]:
        """Accounts whose outbound table the simulator cannot serve, with the reason."""
        found: dict[str, str] = {}
        for account in self.accounts:
            if not account.outbound:
                continue  # webhook-only account: nothing to send through, nothing to serve
            problem = SIMULATED[account.provider].outbound_problem(account)
            if problem is not None:
                found[account.name] = problem
        return found

    # --- the send APIs -----------------------------------------------------------------------

    def send_endpoint(self, provider: SimulatedProvider) -> SendEndpoint:
        async def endpoint(request: Request) -> Response:
            return await self.handle_send(request, provider)

        return endpoint

    async def handle_send(self, request: Request, provider: SimulatedProvider) -> Response:
        """Auth, then faults, then validation: a faulted send is refused before it is read."""
        found = provider.authenticate(request, self.served(provider.NAME))
        if isinstance(found, Response):
            return found
        account = found
        fault = self.faults.take(provider.NAME, account.name)
        if fault is not None and fault.mode != "slow":
            return await _faulted(request, provider, fault)
        parsed = provider.parse_send(request, account, await request.body())
        if isinstance(parsed, Response):
            return parsed
        body = decode_json(await request.body())
        now = datetime.now(UTC)
        for message in parsed:
            send = ReceivedSend(provider=provider.NAME, account=account.name,
                                path=request.url.path, body=body, message=message,
                                received_at=now)
            self.recorder.add(send)
            hooks = provider.status_webhooks(send, at=now,
                                             step=timedelta(seconds=self.status_delay_s))
            self.dispatcher.enqueue(Job(provider.NAME, account, tuple(hooks),
                                        self.status_delay_s, url=message.status_url,
                                        signed=message.status_url is None
                                        or message.status_url_signed))
        if fault is not None:  # slow: accepted, recorded, but the answer takes its time
            await asyncio.sleep(fault.delay_s)
        return provider.accepted(parsed)

    # --- control API -------------------------------------------------------------------------

    async def list_sends(self, request: Request) -> Response:
        account, provider = (request.query_params.get(key) for key in ("account", "provider"))
        # A misspelt name matched no send: an empty list read as "the bot did not answer".
        if account is not None and all(a.name != account for a in self.accounts):
            return _control_error(404, f"no account {account!r}")
        if provider is not None and provider not in SIMULATED:
            return _control_error(400, f"unknown provider {provider!r}")
        sends = self.recorder.find(account=account, provider=provider)
        return json_response({"sends": [send.to_dict() for send in sends]})

    async def clear_sends(self, request: Request) -> Response:
        return json_response({"cleared": self.recorder.clear()})

    async def inbound(self, request: Request) -> Response:
        """Make the account's provider report an end user's message to ingest."""
        try:
            payload = decode_json(await request.body())
        except ValueError as exc:
            return _control_error(400, str(exc))
        parsed = _inbound_request(payload)
        if isinstance(parsed, str):
            return _control_error(400, parsed)
        name, inbound = parsed
        account = next((a for a in self.accounts if a.name == name), None)
        if account is None:
            return _control_error(404, f"no account {name!r}")
        provider = SIMULATED[account.provider]
        if not account.outbound:
            # Pydantic's "outbound.access_key: Field required" said nothing of why.
            return _control_error(409, f"account {name!r} cannot be simulated: it has no "
                                       f"outbound table ([accounts.{name}.outbound]), so the "
                                       f"sender cannot send for it: a webhook-only account")
        problem = provider.outbound_problem(account)
        if problem is not None:
            return _control_error(409, f"account {name!r} cannot be simulated: {problem}")
        try:
            hook = provider.inbound_webhook(account, inbound, at=datetime.now(UTC))
        except InboundNotSupported as exc:
            return _control_error(400, str(exc))
        self.dispatcher.enqueue(Job(provider.NAME, account, (hook,), 0.0))
        return Response(hook.body, status_code=202, media_type=hook.content_type)

    async def add_fault(self, request: Request) -> Response:
        try:
            spec = FaultSpec.model_validate_json(await request.body())
        except ValidationError as exc:
            return _control_error(400, _validation_reason(exc))
        if spec.provider is not None and spec.provider not in SIMULATED:
            return _control_error(400, f"unknown provider {spec.provider!r}")
        # A fault for a misspelt account would be listed but never fire: say so now.
        if spec.account is not None and all(a.name != spec.account for a in self.accounts):
            return _control_error(404, f"no account {spec.account!r}")
        if spec.mode in PROVIDER_2XX_MODES:
            # One no provider it may reach can answer would fail that send with nothing.
            problem = self._unanswerable(spec)
            if problem is not None:
                return _control_error(400, problem)
        fault = self.faults.add(spec)
        return json_response({"fault": fault.to_dict()}, 201)

    def _unanswerable(self, spec: FaultSpec) -> str | None:
        """Why a fault of an answer only some providers give could reach another."""
        if spec.provider is not None:
            reached = {spec.provider}
        elif spec.account is not None:
            reached = {a.provider for a in self.accounts if a.name == spec.account}
        else:
            reached = set(SIMULATED)
        able = sorted(name for name, provider in SIMULATED.items()
                      if provider.answer_2xx(spec.mode) is not None)
        unable = sorted(reached.difference(able))
        if not unable:
            return None
        return (f"mode {spec.mode!r} is an answer only {', '.join(able)} give a send, "
                f"not {', '.join(unable)}: name one of theirs (provider or account)")

    async def list_faults(self, request: Request) -> Response:
        return json_response({"faults": [fault.to_dict() for fault in self.faults.active()]})

    async def clear_faults(self, request: Request) -> Response:
        return json_response({"cleared": self.faults.clear()})

    async def webhooks(self, request: Request) -> Response:
        return json_response(self.dispatcher.to_dict())

    async def health(self, request: Request) -> Response:
        return json_response({
            "status": "ok",
            # Masked: anyone who can reach the simulator can read this, and the URL may carry
            # Basic credentials (user:password@host).
            "ingest_url": self.dispatcher.ingest_url and scrub(self.dispatcher.ingest_url),
            "accounts": [{"name": a.name, "provider": a.provider,
                          "base_path": f"/{a.provider}"} for a in self.accounts if a.outbound],
            # Apart: no outbound table, so nothing to send through the simulator for them.
            "webhook_only": [{"name": a.name, "provider": a.provider}
                             for a in self.accounts if not a.outbound],
            "problems": self.problems(),
        })

    def routes(self) -> list[BaseRoute]:
        control: list[BaseRoute] = [
            Route("/_sim/sends", self.list_sends, methods=["GET"]),
            Route("/_sim/sends", self.clear_sends, methods=["DELETE"]),
            Route("/_sim/inbound", self.inbound, methods=["POST"]),
            Route("/_sim/faults", self.add_fault, methods=["POST"]),
            Route("/_sim/faults", self.list_faults, methods=["GET"]),
            Route("/_sim/faults", self.clear_faults, methods=["DELETE"]),
            Route("/_sim/webhooks", self.webhooks, methods=["GET"]),
            Route("/_sim/health", self.health, methods=["GET"]),
        ]
        providers: list[BaseRoute] = [
            Mount(f"/{name}", routes=provider.routes(self.send_endpoint(provider),
                                                     self.served(name)))
            for name, provider in SIMULATED.items()
        ]
        return control + providers


def create_simulator_app(accounts: Accounts, ingest_url: str | None, *,
                         status_delay_s: float = 0.05,
                         retry: RetryPolicy | None = None,
                         webhook_queue: int = WEBHOOK_QUEUE_LIMIT,
                         transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The simulator for `accounts`, calling ingest at `ingest_url` (None: no webhooks).

    `status_delay_s` is the pause before each status webhook of a message; `retry` bounds
    webhook redelivery; `webhook_queue` bounds the messages whose webhooks wait for a worker
    (more are dropped and counted); `transport` lets tests route webhooks to an in-process app.
    """
    dispatcher = WebhookDispatcher(ingest_url, retry=retry, queue_limit=webhook_queue,
                                   transport=transport)
    simulator = Simulator(accounts, dispatcher, status_delay_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for name, problem in simulator.problems().items():
            log.warning("simulator cannot serve account", account=name, problem=problem)
        await dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.stop()

    app = Starlette(routes=simulator.routes(), lifespan=lifespan,
                    exception_handlers={HTTPException: _no_such_endpoint})
    app.state.simulator = simulator
    return app


# --- helpers ---------------------------------------------------------------------------------


async def _faulted(request: Request, provider: SimulatedProvider, fault: Fault) -> Response:
    """The provider's answer to a send hit by `fault` (never recorded as received)."""
    if fault.mode == "timeout":
        await _wait_for_disconnect(request, fault.delay_s)
        return provider.failure(504)
    if fault.mode == "rejected":
        return provider.rejected()
    if fault.mode in PROVIDER_2XX_MODES:
        # add_fault refuses these where the provider has no such answer; its refusal otherwise.
        return provider.answer_2xx(fault.mode) or provider.rejected()
    status = HTTP_STATUS[fault.mode]
    response = provider.failure(status)
    if status == 429:
        response.headers["retry-after"] = format(fault.retry_after_s, "g")
    return response


async def _wait_for_disconnect(request: Request, limit_s: float) -> None:
    """Sleep up to `limit_s`, returning early once the client has given up."""
    deadline = time.monotonic() + limit_s
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(_DISCONNECT_POLL_S, left))
        if await request.is_disconnected():
            return


def _inbound_request(payload: Any) -> tuple[str, Inbound] | str:
    """(account name, message) from a /_sim/inbound body, or what is wrong with it."""
    if not isinstance(payload, dict):
        return "expected a JSON object {account, from, text, postback?, to?}"
    # Refused, as /_sim/faults refuses them: a "channel" or a misspelt "payload" was dropped,
    # and the message went out on the account's channel, without its button.
    if unknown := sorted(set(payload) - {"account", "from", "text", "postback", "to"}):
        return (f"unknown field {', '.join(map(repr, unknown))}: it takes account, from, text, "
                "postback and to (the message comes on the account's channel)")
    fields = {key: payload.get(key) for key in ("account", "from", "text")}
    missing = [key for key, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        return f"missing or empty: {', '.join(missing)}"
    for key in ("postback", "to"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            return f"{key!r} must be a string"
    inbound = Inbound(sender=payload["from"], text=payload["text"], message_id=new_id(),
                      postback=payload.get("postback"), to=payload.get("to"))
    return payload["account"], inbound


async def _no_such_endpoint(request: Request, exc: Exception) -> Response:
    """Starlette's 404 and 405, in plain text ("Not Found" of a mistyped /_sim/send), as JSON
    naming what is served."""
    assert isinstance(exc, HTTPException)
    return json_response({"error": f"{exc.detail}: {request.method} {request.url.path}; served: "
                                   "/_sim/sends, /_sim/inbound, /_sim/faults, /_sim/webhooks, "
                                   "/_sim/health, and each provider's API under /<provider>"},
                         exc.status_code, exc.headers)


def _validation_reason(exc: ValidationError) -> str:
    return validation_problems(exc, "body")


def _control_error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


__all__ = ["SIMULATED", "Simulator", "create_simulator_app"]
