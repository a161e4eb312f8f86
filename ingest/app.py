"""The ingest Starlette application: webhook routes, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from ingest import metrics
from ingest.correlation import CorrelationIndex
from ingest.deadlines import BodyDeadlines
from ingest.dedup import RecentRequests
from ingest.limits import Deadlines
from ingest.metrics import declare_accounts
from ingest.protocol import IngestProtocol
from ingest.siblings import SiblingProcesses
from ingest.webhooks import WebhookHandler
from normalizers.registry import echoes_correlation
from switchboard import heap
from switchboard.accounts import Accounts, load_accounts
from switchboard.clients import KafkaConnection, KafkaTarget
from switchboard.logs import RepeatFilter, get_logger
from switchboard.probes import HEALTHZ, METRICS, READYZ, error_body, http_error, probe_answer
from switchboard.producer import DurableProducer
from switchboard.serving import MULTIPROCESS_DIR_ENV
from switchboard.settings import PROVIDER_GIVES_UP_S, Settings
from switchboard.topics import (
    TopicsRefused,
    ensure_topics,
    missing_topics,
    warn_of_small_topics,
)

log = get_logger(__name__)
WEBHOOK_METHODS = ["POST", "GET", "HEAD"]


class Readiness:
    """Answers /readyz from a recent check, so probes do not hammer Kafka.

    /readyz is on the port the internet reaches: its reason says what is wrong in words a
    prober needs, and what Kafka's client said (exception, brokers' addresses, topic names)
    goes to the log, once each time it changes.
    """

    def __init__(self, kafka: KafkaTarget, producer: DurableProducer, ttl_s: float = 5.0,
                 siblings: SiblingProcesses | None = None,
                 correlations: CorrelationIndex | None = None) -> None:
        self.kafka = kafka
        self.producer = producer
        self.siblings = siblings
        self.correlations = correlations
        self.ttl_s = ttl_s
        self._checked_at = 0.0
        self._problem: str | None = "not checked yet"
        self._detail: str | None = None  # what was logged about the last check
        self._checking: asyncio.Future[None] | None = None
        # Set while Kafka answers the start with a refusal (topics it will not create): said
        # as such, or the operator looks at the network for what a setting or an ACL causes.
        self.refused: str | None = None

    async def problem(self) -> str | None:
        if not self.producer.started:
            # Not answered since the start: each try's error is logged (`kafka not reachable
            # yet`), the prober gets the words it gets from a failed check.
            return self.refused or "Kafka unreachable"
        if self.siblings is not None and (problem := self.siblings.problem()):
            return problem
        if self.correlations is not None and not self.correlations.caught_up.is_set():
            # Until then a report on a recent send would go out without its command id: let
            # a rolling deploy keep sending webhooks to the process that has them all.
            return "reading the outbound results that correlate reports"
        if time.monotonic() - self._checked_at > self.ttl_s:
            # One check at a time, whoever asks meanwhile waits for it: /readyz is on the port
            # the internet reaches, and with Kafka unreachable each check holds a connection
            # attempt for up to 5 s; every probe made its own.
            if self._checking is None:
                self._checking = asyncio.ensure_future(self._check())
            await asyncio.shield(self._checking)  # a probe that gives up leaves it to the rest
        return self._problem

    async def _check(self) -> None:
        try:
            missing = await asyncio.wait_for(missing_topics(self.kafka), 5)
            self._problem = "Kafka topics missing" if missing else None
            detail = f"missing topics: {', '.join(missing)}" if missing else None
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            self._problem = "Kafka unreachable"
            detail = f"Kafka unreachable: {exc!r}"
        finally:
            self._checking = None
        self._checked_at = time.monotonic()
        if detail != self._detail:
            self._detail = detail
            if detail is None:
                log.info("ready: kafka reachable and topics present")
            else:
                log.warning("not ready", problem=detail)


def metrics_registry() -> CollectorRegistry:
    """With `serve --workers N` each scrape reaches one worker process: they then share their
    counts through files (prometheus-client's multiprocess mode, set up by `serve`), so every
    scrape sees the sum rather than one worker's share."""
    if not os.environ.get(MULTIPROCESS_DIR_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 answers, as JSON like every other error we return; logged and
    counted like a URL naming no account, so a provider set up with a wrong URL or method
    leaves a trace (serve has no access log)."""
    assert isinstance(exc, HTTPException)
    _no_route(request, exc.status_code, request.method)
    return JSONResponse(http_error(exc.status_code, exc.detail), status_code=exc.status_code,
                        headers=exc.headers)


def _no_route(connection: HTTPConnection, status: int, method: str) -> None:
    outcome = "method_not_allowed" if status == 405 else "no_route"
    metrics.count_request("unknown", "unknown", outcome)
    # Info, not warning: most of these are the internet's scanners, not providers. One kind
    # per status, not per path: a scanner probes a new path with each request.
    connection.app.state.handler.refusals(logging.INFO, "no route takes the request",
                                          {"status": status}, method=method[:20],
                                          path=connection.scope["path"][:200])


async def _no_websocket(websocket: WebSocket) -> None:
    """A WebSocket handshake (uvicorn hands those to the app) got Starlette's 403 with an
    empty text/plain body, logged and counted nowhere: ingest serves none, so it is a 404
    like any URL no route takes, with the same JSON body."""
    _no_route(websocket, 404, "GET")
    try:
        await websocket.send_denial_response(JSONResponse(http_error(404), status_code=404))
    except RuntimeError:  # a server without the denial extension: its own refusal
        await websocket.close()


# uvicorn's warning for each request it cannot parse, before any app sees it: a TLS handshake
# on the plain port, a scanner's garbage. Like our own refusals, once a minute with a count.
UNPARSED_REQUEST = "Invalid HTTP request received."


class _UnparsedRequests(RepeatFilter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != UNPARSED_REQUEST or super().filter(record)


def _quiet_unparsed_requests() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _UnparsedRequests) for existing in logger.filters):
        logger.addFilter(_UnparsedRequests(("uvicorn.error",), window_s=60.0))


class WebhookShortcut:
    """`POST /webhooks/{provider}/{account}`, the webhook URL as providers are given it, straight
    to the handler: Starlette's exception middleware and router cost about 5 µs a request
    (`python -m bench profile`) to find a route the path names alone. The handler answers every
    outcome itself (it raises no HTTPException, the one thing that middleware handles); a
    bug's exception still reaches the server-error middleware outside this one, so its 500 is
    the same. Any other request, a kind segment, a trailing slash or a root path included,
    takes the router as before."""

    def __init__(self, app: ASGIApp, handler: WebhookHandler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            # What the route's `[^/]+` segments match: neither empty nor holding a slash.
            parts = scope["path"].split("/")
            if len(parts) == 4 and parts[1] == "webhooks" and parts[0] == "" \
                    and parts[2] and parts[3]:
                scope["path_params"] = {"provider": parts[2], "account": parts[3]}
                response = await self.handler.handle(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _server_error(request: Request, exc: Exception) -> Response:
    """A bug's 500, as JSON like every other answer (Starlette's own is plain text), saying
    nothing of the error: the exception goes on to uvicorn, which logs it."""
    return JSONResponse(error_body("internal_error", "the webhook could not be handled; "
                                   "retry later"), status_code=500)


def _repeat_wait_s(settings: Settings, correlations: CorrelationIndex | None) -> float:
    """How long a repeat waits for the same request being stored: what that one can take
    (its reports' correlation, its publish), and a margin for normalizing a large body."""
    correlating_s = correlations.wait_s if correlations is not None else 0.0
    return settings.produce_timeout_s + correlating_s + 5.0


async def _connect(producer: DurableProducer, settings: Settings, kafka: KafkaConnection,
                   siblings: SiblingProcesses | None, readiness: Readiness) -> None:
    """Connect in the background, retrying: the app serves 503s (not crashes) meanwhile. A
    refusal is tried again too: a cluster whose other brokers are still starting refuses
    3 replicas for a while."""
    delay = 0.5
    while True:
        try:
            if settings.create_topics:
                await ensure_topics(kafka, partitions=settings.topic_partitions,
                                    replication_factor=settings.topic_replication_factor)
            await producer.start()
            log.info("connected to kafka", bootstrap=str(kafka))
            if siblings is not None:
                siblings.connected()
            await warn_of_small_topics(kafka)
            return
        except TopicsRefused as exc:
            readiness.refused = f"Kafka refused to create the topics: {exc.error}"
            log.warning("kafka refused to create the topics", bootstrap=str(kafka),
                        error=str(exc))
        except Exception as exc:  # noqa: BLE001 - keep trying; readiness reports it
            readiness.refused = None
            log.warning("kafka not reachable yet", bootstrap=str(kafka), error=repr(exc))
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


def create_app(settings: Settings, accounts: Accounts | None = None, *,
               metrics_endpoint: bool = True) -> Starlette:
    """The ingest app; without `metrics_endpoint`, /metrics is served elsewhere (`serve` with
    SWITCHBOARD_METRICS_PORT) and not on this port, which providers reach from the internet."""
    if accounts is None:
        if settings.accounts_file is None:
            raise ValueError("no accounts: set SWITCHBOARD_ACCOUNTS_FILE")
        accounts = load_accounts(settings.accounts_file)
    # Scraped at zero before any webhook: an alert on an account's refusals has a series.
    declare_accounts(accounts)
    _quiet_unparsed_requests()
    kafka = settings.kafka_connection()
    producer = DurableProducer(kafka, role="ingest",
                               timeout_s=settings.produce_timeout_s)
    siblings = SiblingProcesses.from_environment()
    unreferenced = frozenset(a.provider for a in accounts if not echoes_correlation(a.provider))
    correlations = CorrelationIndex(kafka, unreferenced) if unreferenced else None
    readiness = Readiness(kafka, producer, siblings=siblings, correlations=correlations)
    handler = WebhookHandler(accounts=accounts, producer=producer,
                             max_body_bytes=settings.max_body_bytes, recent=RecentRequests(),
                             deadlines=BodyDeadlines(settings.body_timeout_s),
                             correlations=correlations,
                             repeat_wait_s=_repeat_wait_s(settings, correlations))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connecting = asyncio.create_task(_connect(producer, settings, kafka, siblings,
                                                  readiness))
        if correlations is not None:
            correlations.start()
        log.info("ingest started", accounts=len(accounts))
        if settings.produce_timeout_s > PROVIDER_GIVES_UP_S:
            log.warning("SWITCHBOARD_PRODUCE_TIMEOUT_S is above the time Webex Connect waits for "
                        "an answer: it gives up and sends the webhook again before a request "
                        "waiting on Kafka gets its 503, and may store it twice",
                        produce_timeout_s=settings.produce_timeout_s,
                        provider_gives_up_s=PROVIDER_GIVES_UP_S)
        try:
            yield
        finally:
            if siblings is not None:  # a stopping process no longer takes webhooks
                siblings.disconnected()
            if correlations is not None:
                await correlations.stop()
            handler.refusals.flush()
            IngestProtocol.refusals.flush()  # serve's, below the app: its held-back count
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            await producer.stop()  # in-flight requests are done: uvicorn drained them
            log.info("ingest stopped")

    async def healthz(request: Request) -> Response:
        status, body = probe_answer(HEALTHZ, None)
        return JSONResponse(body, status_code=status)

    async def readyz(request: Request) -> Response:
        status, body = probe_answer(READYZ, await readiness.problem())
        return JSONResponse(body, status_code=status)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(metrics_registry()), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/webhooks/{provider}/{account}", handler.handle, methods=WEBHOOK_METHODS),
        Route("/webhooks/{provider}/{account}/{kind}", handler.handle, methods=WEBHOOK_METHODS),
        # With a trailing slash too: Starlette would answer those 307 (which Webex never
        # retries), and Bird signs the URL it was given, slash included.
        Route("/webhooks/{provider}/{account}/", handler.handle, methods=WEBHOOK_METHODS),
        Route("/webhooks/{provider}/{account}/{kind}/", handler.handle, methods=WEBHOOK_METHODS),
        Route(HEALTHZ, healthz, methods=["GET"]),
        Route(READYZ, readyz, methods=["GET"]),
    ]
    if metrics_endpoint:
        routes.append(Route(METRICS, metrics, methods=["GET"]))
    # Last: only a WebSocket handshake reaches it (an HTTP request matched a route above, or
    # is a 404 or 405 already).
    routes.append(WebSocketRoute("/{path:path}", _no_websocket))
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(WebhookShortcut, handler=handler)],
                    exception_handlers={HTTPException: _http_error,
                                        Exception: _server_error})
    # A path one slash off a route (`/webhooks/p/a//`, `/healthz/`) got Starlette's 307, which
    # no provider follows and nothing logged, and a 500 when the query was not UTF-8 (the
    # redirect decodes it): it is a 404 like any URL no route takes.
    app.router.redirect_slashes = False
    app.state.producer = producer
    app.state.handler = handler
    app.state.readiness = readiness
    app.state.deadlines = Deadlines.of(settings)  # for serve's protocol, below the app
    return app


def app_from_environment() -> Starlette:
    """The factory `switchboard serve` gives uvicorn (one per worker process)."""
    from switchboard.logs import configure_logging
    from switchboard.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, metrics_endpoint=settings.metrics_port is None)
    heap.settle()
    return app
