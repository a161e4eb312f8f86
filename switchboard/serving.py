"""Running uvicorn inside our own event loop, next to other tasks (workers, the simulator)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import uvicorn

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name for it
# uvicorn's `http=` for ingest: its head bounded, its refusals JSON (see ingest.protocol). By
# name, as uvicorn takes it for `serve --workers N`, whose worker processes import it.
INGEST_HTTP = "ingest.protocol:IngestProtocol"


def ingest_protocol_problem() -> str | None:
    """Why ingest's HTTP protocol cannot run on the installed uvicorn, or None. Asked before
    anything starts: `serve --workers N` met it first in each worker process, which uvicorn's
    supervisor then started again, every half second for ever, each with its traceback; `run`
    after it had started a broker."""
    import uvicorn

    try:
        importlib.import_module(INGEST_HTTP.partition(":")[0])
    except RuntimeError as exc:  # ingest.protocol's own check of uvicorn's private names
        return str(exc)
    except ImportError as exc:  # a name it imports from uvicorn, gone
        return (f"cannot load ingest's HTTP protocol (ingest.protocol) on uvicorn "
                f"{uvicorn.__version__}: {exc}. Install the one constraints.txt pins.")
    return None


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
