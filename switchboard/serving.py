"""Running uvicorn inside our own event loop, next to other tasks (workers, the simulator)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name for it
# uvicorn's `http=` for ingest: its head bounded, its refusals JSON (see ingest.protocol). By
# name, so that `serve --workers N` imports it in the worker processes only.
INGEST_HTTP = "ingest.protocol:IngestProtocol"


def shutdown_grace_s(produce_timeout_s: float) -> int:
    """How long a stopping server waits for in-flight webhooks. They end within the produce
    timeout (2xx, or 503 so the provider retries); at uvicorn's deadline it cancels them and
    the provider gets a 500 instead."""
    return max(30, int(produce_timeout_s) + 10)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host process.

    uvicorn installs its own handlers and re-raises the signal once stopped; when several
    services share one loop, the host decides how to stop them all, in order.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
