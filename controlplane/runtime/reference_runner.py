"""The reference runner: a small real HTTP server that performs `http.webhook` steps (`manage.py runner`).

It shows what a runner must do (docs/runtime.md, "The runner protocol"):

1. verify the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
   `v1,<base64 HMAC-SHA256 over id.timestamp.body>`) and refuse timestamps outside the tolerance window;
2. honour the execution key: the first result for a key is stored durably (SQLite) and a repeated key
   gets that stored reply back (`Idempotent-Replayed: true`) without doing anything twice; concurrent
   requests with one key are serialised, so the second waits for the first and gets its result;
3. reply with a JSON object (the step's outcome), or an error `{"error": {"code", "detail"}}` with a
   status saying whether trying again may help (5xx/429/408) or not (other 4xx).

Demo operations (`inputs.operation`, arguments in `inputs.payload`; every one accepts `delay_ms` first):
`echo` returns the payload; `sleep` waits `ms`; `append` appends `line` to the file `file` in the work
directory (tests count lines to count side effects); `fail` fails (`retryable` true: 503, not stored;
false: 422, stored); `flaky` fails with 503 for the first `failures` attempts of a key, then succeeds.

Standard library only, apart from the signature helpers the control plane's own ingest uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from controlplane.kernel import signatures

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_DELAY_MS = 60_000
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class Refusal(Exception):
    """An error reply: HTTP status, code, detail; `store` when a repeat must get the same answer."""

    def __init__(self, status: int, code: str, detail: str, *, store: bool = False):
        super().__init__(detail)
        self.status, self.code, self.detail, self.store = status, code, detail, store

    def body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "detail": self.detail}}).encode()


class ResultStore:
    """Results by execution key, in SQLite: they survive a restart of the runner."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS results (execution_key TEXT PRIMARY KEY,"
                " inputs_sha256 TEXT NOT NULL, status INTEGER NOT NULL, body BLOB NOT NULL,"
                " created_at REAL NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS attempts (execution_key TEXT PRIMARY KEY, count INTEGER NOT NULL)"
            )
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str) -> tuple[str, int, bytes] | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT inputs_sha256, status, body FROM results WHERE execution_key = ?", (key,)
            ).fetchone()
        return (row[0], row[1], bytes(row[2])) if row else None

    def put(self, key: str, inputs_sha256: str, status: int, body: bytes) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?)", (key, inputs_sha256, status, body, time.time())
            )

    def count_attempt(self, key: str) -> int:
        with self._connect() as db:
            db.execute(
                "INSERT INTO attempts VALUES (?, 1)"
                " ON CONFLICT(execution_key) DO UPDATE SET count = count + 1",
                (key,),
            )
            return db.execute("SELECT count FROM attempts WHERE execution_key = ?", (key,)).fetchone()[0]


class ReferenceRunner:
    """Verifies, dedupes and performs steps. `handle` is the whole protocol; the HTTP layer is thin."""

    def __init__(self, *, secret: str, state: Path, workdir: Path, tolerance_seconds: int = 300):
        signatures.hmac_key(secret)  # ValueError now rather than on the first request
        self.secret = secret
        self.store = ResultStore(state)
        self.workdir = workdir
        self.tolerance_seconds = tolerance_seconds
        self.verified = 0  # requests whose signature verified (a health signal; tests wait on it)
        workdir.mkdir(parents=True, exist_ok=True)
        self.operations: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
            "echo": lambda key, payload: payload,
            "sleep": self._sleep,
            "append": self._append,
            "fail": self._fail,
            "flaky": self._flaky,
        }

    # --- the protocol ---

    def verify(self, headers: Any, body: bytes) -> str:
        """The execution key of a correctly signed, fresh request; Refusal otherwise."""
        webhook_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        signature = headers.get("webhook-signature", "")
        if not (webhook_id and timestamp and signature):
            raise Refusal(
                401, "RUNNER_SIGNATURE_INVALID", "webhook-id, -timestamp and -signature are required"
            )
        try:
            sent_at = int(timestamp)
        except ValueError as exc:
            raise Refusal(401, "STALE_TIMESTAMP", "webhook-timestamp is not an integer") from exc
        if abs(time.time() - sent_at) > self.tolerance_seconds:
            raise Refusal(
                401, "STALE_TIMESTAMP", f"the timestamp is more than {self.tolerance_seconds}s away"
            )
        candidates = [
            s.raw for s in signatures.parse_signatures(signature) if s.version == signatures.HMAC_VERSION
        ]
        content = signatures.signed_content(webhook_id, sent_at, body)
        if not signatures.hmac_matches(self.secret, content, candidates):
            raise Refusal(401, "RUNNER_SIGNATURE_INVALID", "no v1 signature matches this request")
        return webhook_id

    def handle(self, headers: Any, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """One request: (status, reply body, extra headers)."""
        try:
            key = self.verify(headers, body)
            self.verified += 1
            step = self._parse(key, body)
        except Refusal as refusal:
            return refusal.status, refusal.body(), {}
        inputs_sha256 = hashlib.sha256(json.dumps(step["inputs"], sort_keys=True).encode()).hexdigest()
        with self.store.lock(key):
            stored = self.store.get(key)
            if stored is not None:
                if stored[0] != inputs_sha256:
                    refusal = Refusal(
                        409, "IDEMPOTENCY_KEY_CONFLICT", "this execution key came with other inputs"
                    )
                    return refusal.status, refusal.body(), {}
                return stored[1], stored[2], {"Idempotent-Replayed": "true"}
            try:
                result = self._perform(key, step["inputs"])
            except Refusal as refusal:
                if refusal.store:
                    self.store.put(key, inputs_sha256, refusal.status, refusal.body())
                return refusal.status, refusal.body(), {}
            reply = json.dumps(
                {"execution_key": key, "operation": step["inputs"]["operation"], "result": result},
                sort_keys=True,
            ).encode()
            self.store.put(key, inputs_sha256, 200, reply)
            return 200, reply, {"Idempotent-Replayed": "false"}

    def _parse(self, key: str, body: bytes) -> dict[str, Any]:
        try:
            step = json.loads(body)
        except ValueError as exc:
            raise Refusal(400, "MALFORMED_STEP", "the body is not JSON") from exc
        if not isinstance(step, dict) or step.get("execution_key") != key:
            raise Refusal(
                400, "MALFORMED_STEP", "the body is an object whose execution_key is the webhook-id"
            )
        inputs = step.get("inputs")
        if not isinstance(inputs, dict) or not isinstance(inputs.get("operation"), str):
            raise Refusal(400, "MALFORMED_STEP", "inputs.operation is required")
        return step

    def _perform(self, key: str, inputs: dict[str, Any]) -> dict[str, Any]:
        operation = self.operations.get(inputs["operation"])
        if operation is None:
            raise Refusal(422, "OPERATION_UNKNOWN", f"no operation {inputs['operation']!r}", store=True)
        payload = inputs.get("payload") or {}
        delay = payload.get("delay_ms", 0)
        if not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY_MS:
            raise Refusal(422, "PAYLOAD_INVALID", f"delay_ms is 0 to {MAX_DELAY_MS}", store=True)
        time.sleep(delay / 1000)
        return operation(key, payload)

    # --- demo operations ---

    def _sleep(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        ms = payload.get("ms", 0)
        if not isinstance(ms, int) or not 0 <= ms <= MAX_DELAY_MS:
            raise Refusal(422, "PAYLOAD_INVALID", f"ms is 0 to {MAX_DELAY_MS}", store=True)
        time.sleep(ms / 1000)
        return {"slept_ms": ms}

    def _append(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        name, line = payload.get("file", ""), payload.get("line", "")
        if not isinstance(name, str) or not FILE_NAME.match(name):
            raise Refusal(
                422, "PAYLOAD_INVALID", "file is a plain file name in the work directory", store=True
            )
        if not isinstance(line, str) or "\n" in line or len(line) > 1000:
            raise Refusal(422, "PAYLOAD_INVALID", "line is one line of at most 1000 characters", store=True)
        path = self.workdir / name
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with path.open(encoding="utf-8") as handle:
            lines = sum(1 for _ in handle)
        return {"file": name, "line": line, "lines": lines}

    def _fail(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        message = str(payload.get("message", "asked to fail"))[:200]
        if payload.get("retryable"):
            raise Refusal(503, "DEMO_RETRYABLE_FAILURE", message)
        raise Refusal(422, "DEMO_FAILURE", message, store=True)

    def _flaky(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        failures = payload.get("failures", 1)
        attempt = self.store.count_attempt(key)
        if isinstance(failures, int) and attempt <= failures:
            raise Refusal(503, "DEMO_FLAKY", f"attempt {attempt} of a key fails (failures={failures})")
        return {"attempts": attempt}

    # --- HTTP ---

    def server(self, host: str, port: int) -> ThreadingHTTPServer:
        runner = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "ControlPlaneReferenceRunner/1"
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._reply(200, b'{"ok":true}', {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_BODY_BYTES:
                    self.close_connection = True
                    refusal = Refusal(413, "MALFORMED_STEP", "a body of 1 byte to 1 MiB is required")
                    self._reply(refusal.status, refusal.body(), {})
                    return
                body = self.rfile.read(length)
                status, reply, headers = runner.handle(self.headers, body)
                try:
                    self._reply(status, reply, headers)
                except (BrokenPipeError, ConnectionResetError):
                    logger.info("the caller left before the reply (%s); the result is stored", status)

            def log_message(self, format: str, *args: Any) -> None:
                logger.info("%s " + format, self.address_string(), *args)

        httpd = ThreadingHTTPServer((host, port), Handler)
        httpd.daemon_threads = True
        return httpd
