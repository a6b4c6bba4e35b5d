"""How the web process serves requests: the WSGI application, its ingest fast path, and a gunicorn worker.

`controlplane.wsgi.application` is `IngestFastPath` around Django's WSGI handler. It sends
`POST /api/v1/events/` — the one endpoint that is hit thousands of times a second — through a lean
Django handler: the same view (`EventIngestView`, controlplane.channels.ingest.view), but without URL
resolving and without the middleware a bearer-token JSON endpoint has no use for (static files,
sessions, CSRF, the session user, messages, htmx; `controlplane.channels.ingest.lean.LEAN_SKIP`).
Every other middleware in `settings.MIDDLEWARE` (security headers, ALLOWED_HOSTS through
CommonMiddleware, the request id, X-Frame-Options, ...) still runs, in the same order. Every other
request goes to Django unchanged.

Past saturation a request should be refused at once rather than wait: `QueueTimeWorker` (gunicorn's
`gthread` worker plus a timestamp) notes when a request was handed to the thread pool; if it waited
longer than `CONTROLPLANE_INGEST_QUEUE_BUDGET_MS` for a thread, `IngestFastPath` answers
`503 INGEST_OVERLOADED` with `Retry-After: 1` before Django sees it, and counts the refusal in process
(flushed to the shared counters within a second). Run gunicorn with
`-k controlplane.serving.QueueTimeWorker` (docs/operations.md); with any other worker there is no
queue time and the in-flight limit of the ingest view is the only shedding.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.utils.module_loading import import_string
from gunicorn.workers.gthread import ThreadWorker

from controlplane.kernel.context import clean_request_id
from controlplane.kernel.reasons import reason

INGEST_PATH = "/api/v1/events/"
_local = threading.local()


class LeanChainMixin:
    """A handler whose chain is the lean middleware around the ingest view, with no URL resolving."""

    def load_middleware(self, is_async: bool = False) -> None:
        from controlplane.channels.ingest.lean import lean_middleware  # after the apps are loaded
        from controlplane.channels.ingest.view import EventIngestView

        handler = convert_exception_to_response(EventIngestView.as_view())

        for path in reversed(lean_middleware()):
            try:
                wrapped = import_string(path)(handler)
            except MiddlewareNotUsed:  # as Django's own handler: a middleware may opt out at start-up
                continue
            handler = convert_exception_to_response(wrapped)
        self._view_middleware: list = []
        self._template_response_middleware: list = []
        self._exception_middleware: list = []
        self._middleware_chain = handler


class LeanIngestHandler(LeanChainMixin, WSGIHandler):
    """The WSGI handler for `POST /api/v1/events/` (tests mix `LeanChainMixin` into the test client's)."""


def _overloaded(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    from controlplane.channels import services

    services.rejection_record(producer=None, code="INGEST_OVERLOADED", deferred=True)
    request_id = clean_request_id(environ.get("HTTP_X_REQUEST_ID"))
    entry = reason("INGEST_OVERLOADED")
    body = orjson.dumps({"detail": entry.description, "code": entry.code, "request_id": request_id})
    start_response(
        f"{entry.status} Service Unavailable",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Retry-After", "1"),
            ("X-Request-ID", request_id),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
        ],
    )
    return [body]


class IngestFastPath:
    """WSGI: ingest POSTs to the lean handler (or refused when they waited too long), the rest to Django."""

    def __init__(self, application: WSGIHandler) -> None:
        self.application = application
        self.ingest = LeanIngestHandler()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != INGEST_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.application(environ, start_response)
        waited = getattr(_local, "waited", None)
        budget = settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS / 1000.0
        if waited is not None and budget > 0 and waited > budget:
            return _overloaded(environ, start_response)
        return self.ingest(environ, start_response)


class QueueTimeWorker(ThreadWorker):
    """gunicorn's `gthread` worker, noting when each request was queued for a worker thread."""

    def enqueue_req(self, conn: Any) -> None:
        conn.controlplane_queued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        # Measured when a thread picks the connection up: the time in the pool's queue, not the time a
        # new connection then takes to send its request.
        queued_at = getattr(conn, "controlplane_queued_at", None)
        _local.waited = None if queued_at is None else time.monotonic() - queued_at
        try:
            return super().handle(conn)
        finally:
            _local.waited = None


def freeze_startup_objects() -> None:
    """Once the application is loaded: move everything alive into the collector's permanent generation.

    Django, DRF and the app registry leave a few hundred thousand long-lived objects; every full
    collection of the cyclic garbage collector walked them all, a pause of tens of milliseconds that a
    request arriving then waited out (on the ASGI path, every request on the loop). Frozen, they are
    never walked again; what requests allocate is collected as before. Measured in docs/benchmarks.md.
    """
    gc.collect()
    gc.freeze()


def set_waited(seconds: float | None) -> None:
    """For tests: pretend the current thread's request waited `seconds` for a thread."""
    _local.waited = seconds
