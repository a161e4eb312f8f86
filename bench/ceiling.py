"""The ceiling: a bare Starlette endpoint that parses the same JSON and answers 200."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchboard import heap


async def webhook(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(b'{"ok":true}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/{provider}/{account}", webhook, methods=["POST"])])
# The collector settings ingest's factory applies: a process setting, not work ingest does.
heap.settle()
