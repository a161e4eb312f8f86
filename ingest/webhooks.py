"""The webhook endpoint: authenticate, keep, normalize, publish durably, then answer.

Order matters: nothing is published for a request that is not authenticated, and nothing
is answered 2xx before Kafka acknowledged every record the request produced. Checking a
request's credentials and reading its body are in ingest.request_reading.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ingest import metrics
from ingest.auth import (
    AuthError,
    names_url_token,
    refuse_repeated,
    repeated_headers,
    without_token,
)
from ingest.correlation import CorrelationIndex, correlate
from ingest.deadlines import BodyDeadlines, BodyTimeout
from ingest.dedup import RecentRequests, Refused
from ingest.normalizing import content_coding, normalized, off_loop_if_large, storable
from ingest.request_reading import RequestReading
from ingest.stored import Unstorable, fitted_raw
from normalizers import WebhookRequest, get
from normalizers.base import Ack
from normalizers.registry import acknowledgement
from switchboard.accounts import Account, Accounts
from switchboard.logs import get_logger
from switchboard.probes import error_body
from switchboard.producer import DurableProducer, PublishError
from switchboard.producer_placement import SizedRecords
from switchboard.providers import PROVIDERS
from switchboard.records import dead_letter_record, raw_envelope
from switchboard.throttle import ThrottledLog

log = get_logger(__name__)

# Kept with the raw record: useful for debugging and replay, never credentials.
KEPT_HEADERS = (
    "content-type", "content-encoding", "user-agent", "x-forwarded-for", "x-request-id",
    "webhook-id", "webhook-timestamp", "messagebird-request-timestamp",
)
# Schemes whose credentials are all in the headers and the URL: checked before the body is read,
# so a caller without them cannot have ingest take in and hold up to max_body_bytes.
HEADER_AUTH_SCHEMES = frozenset({"basic", "token"})
# More digits than any body size the settings allow (at most 1,500,000): too large, unread.
_MAX_BODY_DIGITS = 12

# What uuid.UUID(int=..., version=4) does to the bits: RFC 4122 variant, version 4.
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def new_id() -> str:
    """A random UUID without a syscall per call (uuid4 reads os.urandom every time); these
    ids only need to be unique, not secret. Written as str(uuid.UUID(int=bits, version=4))
    writes it, without building the UUID object (a third of the cost; one per request)."""
    digits = "%032x" % (random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(error_body(code, message))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _unavailable() -> Response:
    return error_response(503, "storage_unavailable",
                          "the webhook could not be stored; retry later",
                          headers={"Retry-After": "5"})


@dataclass
class WebhookHandler(RequestReading):
    """Holds what each request needs; `handle` is the Starlette endpoint."""

    accounts: Accounts
    producer: DurableProducer
    max_body_bytes: int
    recent: RecentRequests
    deadlines: BodyDeadlines
    correlations: CorrelationIndex | None = None
    # How long a repeat waits for the same request being stored (its publish's timeout and
    # more): past it, a 503. Ingest's app sets it from SWITCHBOARD_PRODUCE_TIMEOUT_S.
    repeat_wait_s: float = 15.0
    # Anyone can make ingest refuse a request, as often as they like: logged once a minute.
    refusals: ThrottledLog = field(default_factory=lambda: ThrottledLog(log))

    async def handle(self, request: Request) -> Response:
        provider: str = request.path_params["provider"]
        name: str = request.path_params["account"]
        account = self.accounts.get(provider, name) if provider in PROVIDERS else None
        if account is None:
            # Both names are the caller's to invent: neither is a label, nor tells log kinds
            # apart (a scanner trying names got a line for each), only shown as an example.
            known = provider if provider in PROVIDERS else "unknown"
            metrics.count_request(known, "unknown", "unknown_account")
            self.refusals(logging.WARNING, "webhook for unknown account",
                          {"provider": known, "status": 404}, account=name[:80],
                          path=request.scope["path"][:200])
            if provider not in PROVIDERS:  # same code: the URL names no configured account
                return error_response(404, "unknown_account",
                                      f"no provider named {provider[:40]!r}; known: "
                                      f"{', '.join(sorted(PROVIDERS))}")
            return error_response(404, "unknown_account",
                                  f"no {provider} account named {name[:80]!r} is configured")
        query_string = request.scope["query_string"]
        if ((request.method == "HEAD" and not names_url_token(query_string, account.auth))
                or (request.method == "GET" and not query_string)):
            # Providers (Webex Connect) validate a URL before saving it: say it exists. One
            # carrying the account's URL token has it checked first (in _process).
            metrics.count_request(account.provider, account.name, "url_check")
            return Response(b"", status_code=200)
        return await self._receive(request, account)

    async def _receive(self, request: Request, account: Account) -> Response:
        outcome = "error"
        try:
            response, outcome = await self._process(request, account)
            return response
        except ClientDisconnect:  # nobody reads this answer; it is still the usual shape
            outcome = "client_disconnect"
            self.refusals(logging.INFO, "webhook sender disconnected before its body arrived",
                          {"provider": account.provider, "account": account.name})
            return error_response(400, "client_disconnected", "the body did not arrive whole")
        except BodyTimeout as exc:
            outcome = "body_timeout"
            self.refusals(logging.WARNING, "webhook body timed out",
                          {"provider": account.provider, "account": account.name,
                           "timeout_s": self.deadlines.timeout_s})
            # Closed after the answer: the rest of this body must not be read as a request.
            return error_response(408, "body_timeout", str(exc), {"connection": "close"})
        finally:
            metrics.count_request(account.provider, account.name, outcome)

    async def _process(self, request: Request, account: Account) -> tuple[Response, str]:
        method = request.method  # read once: Starlette's is a property looking in the scope
        # ASGI header names are lower-case already; one dict beats repeated list scans.
        raw_headers = request.scope["headers"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers}
        # The dict keeps a repeated header's last copy: the verifiers refuse a credential sent
        # twice rather than pick one. Only looked for when some name came twice (rare).
        repeated = (repeated_headers(raw_headers) if len(headers) < len(raw_headers)
                    else frozenset())
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit():
            # Measured as text first: int() refuses over 4,300 digits (ValueError: a 500).
            digits = declared.lstrip("0")
            if len(digits) > _MAX_BODY_DIGITS or int(digits or "0") > self.max_body_bytes:
                return self._too_large(account), "too_large"
        query = request.scope["query_string"].decode("latin-1")
        early = account.auth.scheme in HEADER_AUTH_SCHEMES
        matched = 0  # which of the account's secrets authenticates it: see _count_secret
        if early:
            try:
                matched = self._verify(request, account, query, headers, repeated, b"")
            except AuthError as exc:
                return self._unauthorized(account, exc), "unauthorized"
        if repeated and not early:  # a credential sent twice needs no body to be refused
            try:
                refuse_repeated(repeated, account.auth)
            except AuthError as exc:
                return self._unauthorized(account, exc), "unauthorized"
        if method == "HEAD" or (method == "GET" and not without_token(query, account.auth)):
            # A provider checking the URL it was given, token and all: it exists, and the
            # token is right (a wrong one got its 401 above, so the URL is not saved).
            self._count_secret(account, matched)
            return Response(b"", status_code=200), "url_check"
        body = await self._read_body(request)
        if body is None:
            return self._too_large(account), "too_large"
        if not early:
            try:
                matched = self._verify(request, account, query, headers, repeated, body)
            except AuthError as exc:
                return self._unauthorized(account, exc), "unauthorized"
        # Counted once the request is accepted, its body whole: a basic or token request is
        # authenticated before its body is read, and one refused for its body (413, timeout,
        # gone) then was counted, where a signed scheme's was not.
        self._count_secret(account, matched)

        query = without_token(query, account.auth)
        received_at = datetime.now(UTC)
        raw_id = new_id()
        content_type = headers.get("content-type", "")
        envelope = raw_envelope(
            raw_id=raw_id, provider=account.provider, account=account.name,
            method=method, path=request.scope["path"], query=query,
            content_type=content_type,
            # Not the token's header, when an account takes it in one kept (x-request-id).
            headers={h: headers[h] for h in KEPT_HEADERS
                     if h in headers and h != account.auth.header},
            body=body, received_at=received_at,
        )
        # The content type and encoding too: each can make other events of the same bytes, or
        # a refusal (a gzip body's 415 was answered 200 when a plain one of its bytes was kept).
        # Not the path: its kind segment is ignored.
        coding = content_coding(headers.get("content-encoding", ""))
        fingerprint = self.recent.fingerprint(account.provider, account.name, method,
                                              content_type, coding, query, body)
        webhook = WebhookRequest(provider=account.provider, account=account.name, body=body,
                                 received_at=received_at, raw_id=raw_id,
                                 content_type=content_type, query=query,
                                 method=method, headers=headers)
        seen = self.recent.seen(fingerprint)
        if seen is None and not self.recent.claim(fingerprint):
            # The same request is being stored now (a provider retrying one it gave up waiting
            # for): answered as a repeat of what that one keeps, or stored if it kept nothing.
            try:
                seen = await self.recent.seen_once_stored(fingerprint, self.repeat_wait_s)
            except TimeoutError:
                self.refusals(logging.WARNING, "webhook repeated while still being stored, "
                              "answering 503",
                              {"provider": account.provider, "account": account.name},
                              wait_s=self.repeat_wait_s)
                return _unavailable(), "unavailable"
        if seen is not None:
            metrics.DUPLICATES.labels(account.provider, account.name).inc()
            if isinstance(seen, Refused):  # its dead letter is kept: the same answer, no other
                return error_response(*seen.answer), "duplicate_dead_letter"
            # Answered as it was, without reading its events again (see acknowledge).
            return self._ack(get(account.provider).acknowledge(webhook)), "duplicate"

        try:
            return await self._store(account, webhook, envelope, fingerprint)
        finally:
            self.recent.release(fingerprint)

    async def _store(self, account: Account, webhook: WebhookRequest, envelope: dict[str, Any],
                     fingerprint: bytes) -> tuple[Response, str]:
        """Normalize, publish, answer: the request holds its fingerprint's claim meanwhile."""
        body, received_at, raw_id = webhook.body, webhook.received_at, webhook.raw_id
        # A large body is normalized and its records built off the event loop.
        events, failure = await off_loop_if_large(len(body), normalized, webhook)
        read = events  # what the answer comes with (correlation returns new events)
        if events and self.correlations is not None \
                and account.provider in self.correlations.providers:
            events = await correlate(self.correlations, events)
        try:
            envelope, raw = fitted_raw(envelope, received_at)
        except Unstorable as exc:  # nothing of it fits Kafka, not even as a dead letter
            log.warning("webhook too large to store", provider=account.provider,
                        account=account.name, reason=exc.reason)
            return error_response(413, "payload_too_large", exc.reason), "too_large"
        # Each record measured once: publish takes these sizes (the events' were measured
        # against their topics' limits).
        records = SizedRecords()
        records.add(raw)
        if failure is None:
            stored, failure = await off_loop_if_large(len(body), storable, events, len(body))
            records.extend(stored)
        dead_letter_id = ""  # logged below: what `switchboard replay --id` takes
        if failure is not None:
            dead_letter_id = new_id()
            records.add(dead_letter_record(
                dl_id=dead_letter_id, stage="normalize", reason=failure[2],
                provider=account.provider, account=account.name, time=received_at,
                payload=envelope))

        started = time.perf_counter()
        try:
            await self.producer.publish(records)
        except PublishError as exc:
            # Once a minute per account: an outage answers every webhook so (and their
            # retries), and wrote an error line for each; the metrics count them all.
            self.refusals(logging.ERROR, "webhook not stored, answering 503",
                          {"provider": account.provider, "account": account.name},
                          reason=str(exc))
            return _unavailable(), "unavailable"
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)

        if failure is not None:
            # Only once Kafka has it: a retry of a 503 must get its chance to be kept.
            self.recent.remember_refused(fingerprint, failure)
            metrics.DEAD_LETTERS.labels(account.provider, account.name).inc()
            log.warning("webhook kept as dead letter", provider=account.provider,
                        account=account.name, dead_letter_id=dead_letter_id, raw_id=raw_id,
                        reason=failure[2])
            return error_response(failure[0], failure[1], failure[2]), "dead_letter"

        self.recent.remember(fingerprint)
        for event in events:
            metrics.count_event(account.provider, event.type.value,
                                event.status.value if event.status else "")
        # Given with the events, so a provider whose answer depends on the body (Bird) reads it
        # once, not again here.
        return self._ack(acknowledgement(webhook, read)), "stored"

    def _unauthorized(self, account: Account, exc: AuthError) -> Response:
        self.refusals(logging.WARNING, "webhook authentication failed",
                      {"provider": account.provider, "account": account.name,
                       "reason": exc.reason})
        return error_response(401, "unauthorized", exc.reason)

    def _too_large(self, account: Account) -> Response:
        self.refusals(logging.WARNING, "webhook body too large",
                      {"provider": account.provider, "account": account.name,
                       "limit": self.max_body_bytes})
        return error_response(413, "payload_too_large",
                              f"body exceeds {self.max_body_bytes} bytes")

    @staticmethod
    def _ack(ack: Ack) -> Response:
        return Response(ack.body, status_code=ack.status_code, media_type=ack.content_type)

