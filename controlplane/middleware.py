"""Middleware: every request gets an id (X-Request-ID) and a trace context that its ledger events carry;
a dependency lost mid-request is a coded 503."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape

from controlplane.exceptions import not_found
from controlplane.kernel.context import clean_request_id, parse_traceparent, request_context
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.outages import outage_code
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
        refusal = ControlPlaneError(code)
        headers = {"Retry-After": "5"}
        if request.path.startswith("/api/"):
            body = {**refusal.as_dict(), "request_id": getattr(request, "request_id", None)}
            return JsonResponse(body, status=refusal.status, headers=headers)
        page = f'<!doctype html><title>{code}</title><p data-code="{code}">{escape(refusal.detail)}</p>'
        return HttpResponse(page, status=refusal.status, headers=headers)


def _is_html_api_answer(request: HttpRequest, response: HttpResponse) -> bool:
    return request.path.startswith("/api/") and response.get("Content-Type", "").startswith("text/html")
