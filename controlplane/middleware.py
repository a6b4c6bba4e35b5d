"""Middleware: every request gets an id (X-Request-ID) and a trace context that its ledger events carry."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from controlplane.exceptions import not_found
from controlplane.kernel.context import clean_request_id, parse_traceparent, request_context


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = clean_request_id(request.headers.get("X-Request-ID"))
        header = request.headers.get("traceparent")
        traceparent = header.strip() if header and parse_traceparent(header) else None
        request.request_id = request_id
        with request_context(request_id=request_id, traceparent=traceparent):
            response = self.get_response(request)
            if response.status_code == 404 and settings.DEBUG and _is_html_api_answer(request, response):
                # DEBUG's technical 404 page lists every URL pattern and bypasses handler404.
                response = not_found(request)
        response["X-Request-ID"] = request_id
        return response


def _is_html_api_answer(request: HttpRequest, response: HttpResponse) -> bool:
    return request.path.startswith("/api/") and response.get("Content-Type", "").startswith("text/html")
