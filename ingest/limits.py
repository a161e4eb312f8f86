"""What a connection may take of an ingest process: how long its request's head, and a body no
one reads, may take to arrive, and how many connections the process serves at once.

Read by ingest.protocol (uvicorn's HTTP protocol, below the app) from the app's state, where
create_app puts its settings': so `serve`, each of its `--workers N` processes, and `run`'s
in-process ingest all keep their own settings'.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import httptools
from uvicorn.server import ServerState

from switchboard.settings import Settings

# Answered whatever the limit on connections: a liveness probe refused under load could have a
# busy process restarted, and they are cheap.
PROBE_PATHS = frozenset({b"/healthz", b"/readyz"})
# Most providers retry on their own schedule; to one that reads it, as the 503 of a webhook
# Kafka did not store says.
OVER_LIMIT_RETRY_AFTER_S = 5


class Deadlines(NamedTuple):
    """How long a request's URL and headers, and a body no one reads, may take to arrive; and
    how many connections one process serves at once (None: no limit)."""

    head_s: float
    body_s: float
    max_connections: int | None = None

    @classmethod
    def of(cls, settings: Settings) -> Deadlines:
        return cls(settings.header_timeout_s, settings.body_timeout_s,
                   settings.http_max_connections)


DEFAULT_DEADLINES = Deadlines(Settings.model_fields["header_timeout_s"].default,
                              Settings.model_fields["body_timeout_s"].default)


def deadlines_of(app: Any) -> Deadlines:
    """The deadlines the ingest app keeps in its state (create_app puts its settings' there),
    found under uvicorn's middleware; another app's are the settings' defaults."""
    while (state := getattr(app, "state", None)) is None and hasattr(app, "app"):
        app = app.app
    deadlines = getattr(state, "deadlines", None)
    return deadlines if isinstance(deadlines, Deadlines) else DEFAULT_DEADLINES


# Per server: the connections it has hung up on (a refusal, an answer that announced
# `connection: close`) that are still open, reading and dropping what their client still
# sends for a moment (ingest.protocol_refusals.LINGER_S). They are no longer served, so they
# do not count against the limit: counted, a burst of refusals had the next request of a
# connection being served refused too, for as long as they lingered.
_leaving: weakref.WeakKeyDictionary[ServerState, int] = weakref.WeakKeyDictionary()


def leaving(server: ServerState) -> int:
    return _leaving.get(server, 0)


def left(server: ServerState, count: int) -> None:
    """`count` (1, or -1 once closed) more connections of `server` hung up on."""
    _leaving[server] = _leaving.get(server, 0) + count


def over_limit(limit: int, server: ServerState, url: bytes) -> bool:
    """Whether the request for `url`, its head just whole, is one too many: more connections
    open than `limit`, its own included, those hung up on not; or more requests still being
    answered than `limit` (one whose client hung up is answered to its end), its own not yet
    among them. Counted as uvicorn counts its `limit_concurrency` set one higher (its own
    refused every request at 1): a limit of 1 serves one connection, and the requests it
    sends one after the other. A probe never is.
    (Its URL is parsed only then: an unreadable one raises, as it would in uvicorn's parsing
    after, and is answered 400.)"""
    connections = len(server.connections)
    if len(server.tasks) <= limit and (connections <= limit
                                       or connections - leaving(server) <= limit):
        return False
    return httptools.parse_url(url).path not in PROBE_PATHS
