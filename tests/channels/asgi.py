"""Driving the project's ASGI application as uvicorn does: one event loop, on a thread of its own, for
the whole session (the ingest path's group commit and chain writer bind to their loop)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson


class LoopThread:
    """An event loop running on a daemon thread; `run` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-asgi-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@dataclass
class AsgiResponse:
    """What the application sent, read like Django's test client response."""

    status_code: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    def json(self) -> Any:
        return orjson.loads(self.content)

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]


async def asgi_request(
    application: Any,
    *,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    chunk: int | None = None,
    client: tuple[str, int] = ("127.0.0.1", 40000),
) -> AsgiResponse:
    """One HTTP request through `application`; the body arrives in `chunk`-sized messages if given."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        "client": client,
        "server": ("testserver", 80),
    }
    size = chunk or max(len(body), 1)
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [
        {"type": "http.request", "body": part, "more_body": index < len(parts) - 1}
        for index, part in enumerate(parts)
    ]
    response = AsgiResponse()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # as a client that keeps the connection open
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.status_code = message["status"]
            response.headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]
            }
        elif message["type"] == "http.response.body":
            response.content += message.get("body", b"")

    await application(scope, receive, send)
    return response


class AsgiClient:
    """`post()` as Django's test client has it, through `controlplane.asgi.application` on `loop`."""

    def __init__(self, loop: LoopThread, application: Any | None = None) -> None:
        if application is None:
            from controlplane.asgi import application
        self.loop, self.application = loop, application

    def post(
        self,
        path: str,
        data: bytes | str = b"",
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
        host: str = "testserver",
    ) -> AsgiResponse:
        body = data.encode() if isinstance(data, str) else data
        all_headers = [("host", host), ("content-type", content_type), ("content-length", str(len(body)))]
        all_headers += list((headers or {}).items())
        coroutine = asgi_request(self.application, method="POST", path=path, headers=all_headers, body=body)
        return self.loop.run(coroutine)
