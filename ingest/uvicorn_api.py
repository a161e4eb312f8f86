"""What ingest's HTTP protocol (ingest.protocol) takes of uvicorn's code that uvicorn keeps
private, and the check that the installed uvicorn still has it and is no older than the release
whose behaviour it relies on. Kept apart from the protocol, which is about requests: this is
about uvicorn's releases, the list to bring up to date when one renames something
(tests/unit/test_ingest_uvicorn_api.py fails then). The protocol refuses to load, naming what
is missing, when the check finds anything.
"""

from __future__ import annotations

import re
from importlib import metadata

import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

# What this protocol takes of uvicorn's, none of it public (any release may rename it): each
# function, and the names its code must use. An override uvicorn no longer calls would go
# unused without a word; an attribute renamed would fail at the first request. Checked as
# ingest.protocol is imported instead (by `serve`, as it starts).
_FROM_UVICORN: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (HttpToolsProtocol, "on_headers_complete", ("_start_asgi_task",)),
    (HttpToolsProtocol, "on_response_complete", ("_start_asgi_task", "timeout_keep_alive",
                                                  "timeout_keep_alive_handler",
                                                  "timeout_keep_alive_task")),
    (HttpToolsProtocol, "__init__", ("app", "client", "connections", "cycle",
                                     "expect_100_continue", "flow", "headers", "loop", "parser",
                                     "pipeline", "server_state", "tasks", "transport")),
    (HttpToolsProtocol, "on_message_begin", ("url",)),
    # Ours is uvicorn's with refusals of its own, calling what uvicorn's calls.
    (HttpToolsProtocol, "data_received", ("_unset_keepalive_if_required", "_should_upgrade",
                                          "handle_websocket_upgrade",
                                          "_unsupported_upgrade_warning")),
    (RequestResponseCycle, "__init__", ("body", "disconnected", "keep_alive", "message_event",
                                        "more_body", "response_complete",
                                        "waiting_for_100_continue")),
    (FlowControl, "__init__", ("read_paused",)),
)


# The oldest uvicorn ingest works with, pyproject.toml's lower bound (a test keeps them equal).
# Below 0.53 a request's cycle stays keep_alive when its client sent `Connection: close`, which
# ingest.early_answers reads: the client got a reset in place of its early 404 or 413. No name
# changed, so _FROM_UVICORN cannot see it, and pip leaves an older one beside switchboard
# under --no-deps or a constraint that pins it. No upper bound here: pyproject's keeps
# untried releases out of a plain install; a newer one a user chose is not known to break
# anything, and refusing it would stop a running service over a release number. One that
# renamed what ingest takes fails _FROM_UVICORN, naming what is gone.
OLDEST_UVICORN = (0, 53)


def uvicorn_mismatches() -> list[str]:
    """What of _FROM_UVICORN the installed uvicorn lacks, and its version when older than
    OLDEST_UVICORN."""
    found: list[str] = []
    installed = _installed_version()
    if (major_minor := _major_minor(installed)) is not None and major_minor < OLDEST_UVICORN:
        oldest = ".".join(map(str, OLDEST_UVICORN))
        found.append(f"version {installed} is installed, {oldest} or later is needed (below "
                     "it a client sending `Connection: close` gets a reset in place of its "
                     "404 or 413)")
    for owner, function, names in _FROM_UVICORN:
        code = getattr(getattr(owner, function, None), "__code__", None)
        used = code.co_names if code is not None else ()
        found.extend(f"{owner.__name__}.{function} uses no {name}" for name in names
                     if name not in used)
    return found


def _installed_version() -> str:
    """The installed distribution's version; uvicorn's own when it has no metadata (a bundle
    of modules without it, a PyInstaller build)."""
    try:
        return metadata.version("uvicorn")
    except metadata.PackageNotFoundError:
        return uvicorn.__version__


def _major_minor(version: str) -> tuple[int, int] | None:
    """(major, minor) of a version like 0.53.0, 0.53.0rc1 or 0.53.0+local; None when it does
    not start so: not refused for that, the names are still checked."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None
