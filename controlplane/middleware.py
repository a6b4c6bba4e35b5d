"""Middleware: every request gets an id (X-Request-ID) and a trace context that its ledger events carry;
a dependency lost mid-request is a coded 503; past what the process can serve, a request is shed with a
coded 503 and Retry-After before it takes anything (AdmissionMiddleware)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape

from controlplane.exceptions import not_found
from controlplane.kernel.admission import InflightLimit
from controlplane.kernel.context import clean_request_id, parse_traceparent, request_context
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.outages import RETRY_AFTER_SECONDS, outage_code
from controlplane.kernel.telemetry import response_meta, telemetry_reset, with_meta

logger = logging.getLogger(__name__)


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = clean_request_id(request.headers.get("X-Request-ID"))
        header = request.headers.get("traceparent")
        traceparent = header.strip() if header and parse_traceparent(header) else None
        request.request_id = request_id
        with request_context(request_id=request_id, traceparent=traceparent):
            telemetry_reset()
            response = self.get_response(request)
            if response.status_code == 404 and settings.DEBUG and _is_html_api_answer(request, response):
                # DEBUG's technical 404 page lists every URL pattern and bypasses handler404.
                response = not_found(request)
            _add_envelope(request, response)
        response["X-Request-ID"] = request_id
        return response


def _add_envelope(request: HttpRequest, response: HttpResponse) -> None:
    """The telemetry envelope on a JSON answer under /api/ that DRF's renderer did not make (handler404 and
    handler500 bodies, the coded 503s, a view writing its own bytes): the same `meta` (docs/telemetry.md).
    DRF's answers and the ingest path's carry it already and pass untouched."""
    if (
        not request.path.startswith("/api/")
        or getattr(response, "_telemetry_meta", False)
        or response.streaming
        or response.get("Content-Type", "").split(";")[0].strip() != "application/json"
        or not response.content
    ):
        return
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return
    match = getattr(request, "resolver_match", None)
    response.content = orjson.dumps(
        with_meta(body, response_meta(route=match.view_name if match else None, body=body))
    )
    if response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))
    response._telemetry_meta = True  # type: ignore[attr-defined]


class OutageMiddleware:
    """A server this process depends on lost mid-request (PostgreSQL, Redis) is a coded 503, never an
    uncoded 500 (controlplane.kernel.outages): JSON `{detail, code, request_id}` under /api/, a minimal
    page elsewhere (the console's layout would need the database). Nothing committed: the request's
    transaction, if any, was rolled back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        code = outage_code(exception)
        if code is None:
            return None
        logger.warning("%s: %s %s answered 503 (%s)", code, request.method, request.path, exception)
        return coded_unavailable(request, code)


def coded_unavailable(request: HttpRequest, code: str) -> HttpResponse:
    """A coded 503 with Retry-After: JSON `{detail, code, request_id}` under /api/, a minimal page
    elsewhere (the console's layout would need the database)."""
    refusal = ControlPlaneError(code)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS.get(code, 1))}
    if request.path.startswith("/api/"):
        body = {**refusal.as_dict(), "request_id": getattr(request, "request_id", None)}
        return JsonResponse(body, status=refusal.status, headers=headers)
    page = f'<!doctype html><title>{code}</title><p data-code="{code}">{escape(refusal.detail)}</p>'
    return HttpResponse(page, status=refusal.status, headers=headers)


# Requests admitted at once by this process (every endpoint but the lean ingest path, which has its own).
admitted = InflightLimit("CONTROLPLANE_MAX_INFLIGHT_REQUESTS")
# Answered without the database and without counting: the liveness probe and static files.
_UNCOUNTED_PREFIXES = ("/healthz", "/static/")


class AdmissionMiddleware:
    """Sheds load before a resource runs out, on every endpoint (docs/operations.md, "Load shedding").

    1. At most CONTROLPLANE_MAX_INFLIGHT_REQUESTS requests are served at once by the process; one more
       is answered at once `503 SERVER_OVERLOADED` (`Retry-After: 1`) and does nothing else. Under ASGI
       Django runs each request's synchronous code in a thread of its own, so without this bound a
       burst opens as many threads, and connections, as it has requests.
    2. An admitted request takes its database connection here, first: from the process's pool (it
       waits at most DATABASE_POOL_TIMEOUT for one) or, without a pool, a new connection. None to be
       had is `503 DATABASE_BUSY` (`Retry-After: 1`) before the view runs, never an uncoded 500 from
       the middle of it (a session or a lazy user read in a later middleware would not be caught by
       OutageMiddleware). The connection goes back to the pool when the request finishes (Django's
       request_finished closes it; with a pool, closing returns it).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(_UNCOUNTED_PREFIXES):
            return self.get_response(request)
        semaphore = admitted.semaphore()
        if not semaphore.acquire(blocking=False):
            logger.warning("SERVER_OVERLOADED: %s %s answered 503", request.method, request.path)
            return coded_unavailable(request, "SERVER_OVERLOADED")
        try:
            try:
                connection.ensure_connection()
            except Exception as exc:
                code = outage_code(exc)
                if code is None:
                    raise
                logger.warning("%s: %s %s answered 503 (%s)", code, request.method, request.path, exc)
                return coded_unavailable(request, code)
            return self.get_response(request)
        finally:
            semaphore.release()


def _is_html_api_answer(request: HttpRequest, response: HttpResponse) -> bool:
    return request.path.startswith("/api/") and response.get("Content-Type", "").startswith("text/html")
