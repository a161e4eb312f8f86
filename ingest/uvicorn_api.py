"""What ingest's HTTP protocol (ingest.protocol) takes of uvicorn's code that uvicorn keeps
private, and the check that the installed uvicorn still has it. Kept apart from the protocol,
which is about requests: this is about uvicorn's releases, the list to bring up to date when
one renames something (tests/unit/test_ingest_uvicorn_api.py fails then). The protocol refuses
to load, naming what is missing, when the check finds anything.
"""

from __future__ import annotations

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


def uvicorn_mismatches() -> list[str]:
    """What of _FROM_UVICORN the installed uvicorn lacks."""
    found: list[str] = []
    for owner, function, names in _FROM_UVICORN:
        code = getattr(getattr(owner, function, None), "__code__", None)
        used = code.co_names if code is not None else ()
        found.extend(f"{owner.__name__}.{function} uses no {name}" for name in names
                     if name not in used)
    return found
