"""Running uvicorn inside our own event loop, next to other tasks (workers, the simulator)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host process.

    uvicorn installs its own handlers and re-raises the signal once stopped; when several
    services share one loop, the host decides how to stop them all, in order.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
