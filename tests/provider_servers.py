"""An Infobip-like provider on 127.0.0.1 that answers every send, or hangs until released: for
tests of what a provider that stops answering does to the sender."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson

ANSWER = orjson.dumps({"messages": [{"messageId": "ib-1", "status": {"groupName": "PENDING"}}]})


class Provider:
    """An HTTP server on 127.0.0.1 that answers every send as Infobip does, or never (`hang`,
    until the client closes the connection or `release()`); keeps the bodies it read."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.requests = 0
        self.bodies: list[bytes] = []
        self.base_url = ""
        self._serving: dict[asyncio.Task[object], asyncio.StreamWriter] = {}
        self._hanging: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._serving[task] = writer
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.bodies.append(await reader.readexactly(length))
                self.requests += 1
                if self.hang:
                    self._hanging.add(writer)
                    await reader.read()  # until the client gives up and closes, or release()
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            del self._serving[task]
            self._hanging.discard(writer)
        writer.close()

    def release(self) -> None:
        """Answer from now on; the requests hanging get their connection closed, unanswered."""
        self.hang = False
        for writer in self._hanging:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Provider]:
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with server:
            try:
                yield self
            finally:
                server.close()
                for writer in self._serving.values():  # a hanging one: ended, not left behind
                    writer.close()
                await asyncio.wait_for(asyncio.gather(*self._serving), 5)
