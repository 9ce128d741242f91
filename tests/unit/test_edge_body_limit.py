"""The edge's body bound as pure ASGI: refused on the declared length before a byte is read, or
as soon as the bytes read pass the limit, and the app never handed a cut body as if whole."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from api_edge.body_limit import BoundedBody

LIMIT = 100


class Client:
    """Sends a body in the chunks given, as a server would hand them on; records what came back."""

    def __init__(self, chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.chunks = list(chunks)
        self.headers = headers or []
        self.reads = 0  # body messages the app (through the bound) took
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.chunks:
            return {"type": "http.disconnect"}
        self.reads += 1
        body = self.chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def scope(self) -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": "/", "headers": self.headers, "query_string": b""}

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def response_headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    def body(self) -> dict[str, Any]:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


class Recorder:
    """An app that reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] == "http.disconnect":
                raise OSError("client gone")  # what a body read does on a disconnect
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read() -> None:
    app, client = Recorder(), Client([b"x" * 101], [(b"content-length", b"101")])
    await BoundedBody(app, LIMIT)(client.scope(), client.receive, client.send)
    assert client.reads == 0 and app.messages == []
    assert client.status == 413 and client.body()["code"] == "payload_too_large"
    assert client.response_headers[b"content-type"] == b"application/problem+json"
    assert client.response_headers[b"connection"] == b"close"  # the server stops reading too


async def test_a_chunked_body_over_the_limit_is_refused_as_the_count_passes_it() -> None:
    app, client = Recorder(), Client([b"x" * 40] * 10)  # 400 bytes, no Content-Length
    await BoundedBody(app, LIMIT)(client.scope(), client.receive, client.send)
    assert client.reads == 3  # 120 bytes: the rest is never read, let alone buffered
    assert client.status == 413 and client.body()["status"] == 413
    # The app saw two whole-body-so-far chunks, then a disconnect: never the end of a body.
    assert [m["type"] for m in app.messages] == ["http.request", "http.request", "http.disconnect"]
    assert all(m.get("more_body") for m in app.messages[:2])
    assert len(client.sent) == 2  # the 413 only: nothing the app did after is sent


async def test_a_body_at_the_limit_reaches_the_app_whole() -> None:
    for headers in ([], [(b"content-length", str(LIMIT).encode())]):
        app, client = Recorder(), Client([b"x" * 50, b"x" * 50], headers)
        await BoundedBody(app, LIMIT)(client.scope(), client.receive, client.send)
        assert client.status == 200 and client.sent[1]["body"] == b"100", headers


async def test_a_route_never_runs_on_a_cut_body() -> None:
    """FastAPI turns a failed body read into its own 400: the bound's 413 is what the client gets,
    and the route is never called."""
    calls: list[Any] = []
    api = FastAPI()

    @api.post("/")
    async def route(body: dict[str, Any]) -> dict[str, Any]:
        calls.append(body)
        return body

    payload = json.dumps({"k": "v" * 200}).encode()
    client = Client([payload[i : i + 30] for i in range(0, len(payload), 30)], [(b"content-type", b"application/json")])
    await BoundedBody(api, LIMIT)(client.scope(), client.receive, client.send)
    assert calls == [] and client.status == 413 and client.body()["code"] == "payload_too_large"
    assert len([m for m in client.sent if m["type"] == "http.response.start"]) == 1
