"""The simulator's Starlette app: five provider send APIs plus a `/_sim` control API.

Each provider is served under `/<provider>` (an account's `outbound.base_url` is e.g.
`http://127.0.0.1:8090/infobip`). A send is authenticated with the provider's own scheme, may
be hit by an injected fault, is validated, recorded, answered in the provider's shape, and its
status webhooks are queued for ingest. Its control API under `/_sim` (one line each in
simulator.control's CONTROL_ENDPOINTS, which `GET /` serves, with each account's paths):

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

Its refusals are `{"error": code, "message": ...}` as ingest's are (simulator.control).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import cast

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from simulator.base import (
    InboundNotSupported,
    ReceivedSend,
    SendEndpoint,
    SimulatedProvider,
    decode_json,
    json_response,
)
from simulator.control import (
    CONTROL_ENDPOINTS,
    FAULT_FIELDS,
    INBOUND_FIELDS,
    control_error,
    inbound_request,
    index,
    log_refusal,
    logged,
    no_such_endpoint,
    server_error,
    unknown_account,
    unknown_provider,
)
from simulator.faults import HTTP_STATUS, PROVIDER_2XX_MODES, Fault, FaultBook, FaultSpec
from simulator.recorder import SendRecorder
from simulator.webhooks import WEBHOOK_QUEUE_LIMIT, Job, RetryPolicy, WebhookDispatcher
from switchboard.accounts import Account, Accounts
from switchboard.logs import get_logger, scrub
from switchboard.providers import PROVIDERS, provider_module
from switchboard.throttle import ThrottledLog
from switchboard.validation import validation_problems

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
        self.refusals = ThrottledLog(log)

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
            return unknown_account(account, self.accounts)
        if provider is not None and provider not in SIMULATED:
            return unknown_provider(provider, SIMULATED)
        sends = self.recorder.find(account=account, provider=provider)
        return json_response({"sends": [send.to_dict() for send in sends]})

    async def clear_sends(self, request: Request) -> Response:
        return json_response({"cleared": self.recorder.clear()})

    async def inbound(self, request: Request) -> Response:
        """Make the account's provider report an end user's message to ingest."""
        try:
            payload = decode_json(await request.body())
        except ValueError as exc:
            return control_error(400, "invalid_json", f"{exc}; it takes {INBOUND_FIELDS}")
        parsed = inbound_request(payload)
        if isinstance(parsed, str):
            return control_error(400, "invalid_request", parsed)
        name, inbound = parsed
        account = next((a for a in self.accounts if a.name == name), None)
        if account is None:
            return unknown_account(name, self.accounts)
        provider = SIMULATED[account.provider]
        # 409: the account exists, but its accounts-file entry leaves nothing to simulate.
        if not account.outbound:
            # Pydantic's "outbound.access_key: Field required" said nothing of why.
            return control_error(409, "cannot_simulate",
                                 f"account {name!r} cannot be simulated: it has no outbound "
                                 f"table ([accounts.{name}.outbound]), so the sender cannot "
                                 "send for it: a webhook-only account; give it one, or use an "
                                 "account of GET /_sim/health's accounts")
        problem = provider.outbound_problem(account)
        if problem is not None:
            return control_error(409, "cannot_simulate",
                                 f"account {name!r} cannot be simulated: {problem}; correct "
                                 f"[accounts.{name}.outbound] in the accounts file and restart")
        try:
            hook = provider.inbound_webhook(account, inbound, at=datetime.now(UTC))
        except InboundNotSupported as exc:
            hint = "; send it without \"postback\"" if inbound.postback is not None else ""
            return control_error(400, "unsupported_inbound", f"{exc}{hint}")
        self.dispatcher.enqueue(Job(provider.NAME, account, (hook,), 0.0))
        return Response(hook.body, status_code=202, media_type=hook.content_type)

    async def add_fault(self, request: Request) -> Response:
        try:
            spec = FaultSpec.model_validate_json(await request.body())
        except ValidationError as exc:
            return control_error(400, "invalid_fault",
                                 f"{validation_problems(exc, 'body')}; it takes {FAULT_FIELDS}")
        if spec.provider is not None and spec.provider not in SIMULATED:
            return unknown_provider(spec.provider, SIMULATED)
        # A fault for a misspelt account would be listed but never fire: say so now.
        if spec.account is not None and all(a.name != spec.account for a in self.accounts):
            return unknown_account(spec.account, self.accounts)
        if spec.mode in PROVIDER_2XX_MODES:
            # One no provider it may reach can answer would fail that send with nothing.
            problem = self._unanswerable(spec)
            if problem is not None:
                return control_error(400, "unanswerable_fault", problem)
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

    async def index(self, request: Request) -> Response:
        ingest_url = self.dispatcher.ingest_url and scrub(self.dispatcher.ingest_url)
        return json_response(index(request, self.accounts, request.app.routes, ingest_url))

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
        handlers: dict[tuple[str, str], SendEndpoint] = {
            ("GET", "/"): self.index,
            ("GET", "/_sim/sends"): self.list_sends,
            ("DELETE", "/_sim/sends"): self.clear_sends,
            ("POST", "/_sim/inbound"): self.inbound,
            ("POST", "/_sim/faults"): self.add_fault,
            ("GET", "/_sim/faults"): self.list_faults,
            ("DELETE", "/_sim/faults"): self.clear_faults,
            ("GET", "/_sim/webhooks"): self.webhooks,
            ("GET", "/_sim/health"): self.health,
        }
        # As listed (GET / and 404s show CONTROL_ENDPOINTS): one served but not listed fails here.
        control: list[BaseRoute] = [
            Route(path, logged(handlers.pop((method, path)), self.refusals), methods=[method])
            for method, path, _ in CONTROL_ENDPOINTS]
        assert not handlers, f"control endpoints not in CONTROL_ENDPOINTS: {sorted(handlers)}"
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
            simulator.refusals.flush()  # the last minute's count of refusals, not lost

    async def not_served(request: Request, exc: Exception) -> Response:
        response = await no_such_endpoint(request, exc)
        log_refusal(simulator.refusals, request, response)
        return response

    app = Starlette(routes=simulator.routes(), lifespan=lifespan,
                    exception_handlers={HTTPException: not_served, Exception: server_error})
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


__all__ = ["SIMULATED", "Simulator", "create_simulator_app"]
