"""A small real HTTP server standing in for Slack's, Twilio's, Meta's and GitHub's APIs in the outbound
tests: it records every request (path, headers, body) and answers as the provider documents; with
`fail_next = N` the next N requests are answered 503 (a provider briefly down)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.server.fail_next > 0:
            self.server.fail_next -= 1
            status, answer = 503, {"ok": False, "error": "service_unavailable"}
        else:
            status, answer = self.server.answer(self.path)
        if status == 204:
            self.send_response(204)
            self.end_headers()
            return
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        return


def _answer(path: str) -> tuple[int, dict[str, Any]]:
    if path.endswith("/chat.postMessage"):
        return 200, {"ok": True, "channel": "C1", "ts": "1700000000.000100"}
    if path.endswith("/chat.update"):
        return 200, {"ok": True, "channel": "C1", "ts": "1700000000.000100"}
    if path.endswith("/chat.postEphemeral"):
        return 200, {"ok": True, "message_ts": "1700000000.000200"}
    if path.endswith("/deployment_protection_rule"):
        return 204, {}
    if path.endswith("/Messages.json"):
        return 201, {"sid": "SM0000000000000000000000000000001", "status": "queued"}
    if path.endswith("/messages"):
        return 200, {"messaging_product": "whatsapp", "messages": [{"id": "wamid.OUT1"}]}
    return 404, {"ok": False, "error": "unknown_method"}


@contextlib.contextmanager
def serving() -> Iterator[ThreadingHTTPServer]:
    """The stand-in server on a free loopback port, for as long as the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.seen = []
    server.fail_next = 0
    server.answer = _answer
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stand_in() -> Iterator[ThreadingHTTPServer]:
    with serving() as server:
        yield server
