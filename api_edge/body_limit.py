"""The request body bound (CBS_MAX_BODY_BYTES), for declared and chunked bodies alike.

Pure ASGI: no per-request task the way `@app.middleware("http")` adds one, and nothing buffered. A
declared `Content-Length` over the limit is refused before a byte of the body is read; otherwise
the bytes are counted as the app reads them, and the moment the count passes the limit the client
is answered 413 and the app is told the client has gone (`http.disconnect`), so no route ever takes
the part it read for the whole body. The answer says `Connection: close`: the server then stops
reading (it would otherwise read the rest only to drop it).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_edge.errors import problem
from bus.settings import load

log = logging.getLogger("cbs.edge")


class BoundedBody:
    def __init__(self, app: ASGIApp, limit_bytes: int | None = None) -> None:
        self.app = app
        self.limit_bytes = load().max_body_bytes if limit_bytes is None else limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [value for name, value in scope["headers"] if name == b"content-length"]
        if any(not value.strip().isdigit() or int(value) > self.limit_bytes for value in declared):
            # Too large (or not a length at all: the server refuses those before we see them).
            await self._refuse(scope, receive, send)
            return
        received = 0
        answered = False  # the 413 went out: whatever the app sends now is dropped
        started = False  # the app's own response has begun: too late for a 413

        async def counted_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit_bytes:
                    answered = True
                    if not started:
                        await self._refuse(scope, receive, send)
                    # Never the truncated body: to the app, the client has gone.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not answered:
                raise
            # The app failed on the disconnect it was handed (e.g. a body read cut short): expected.
            log.debug("request body over %d bytes cut short", self.limit_bytes, exc_info=True)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "payload_too_large", f"request bodies are limited to {self.limit_bytes} bytes",
                           headers={"Connection": "close"})  # fmt: skip
        await response(scope, receive, send)
