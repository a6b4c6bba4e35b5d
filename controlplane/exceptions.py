"""One DRF exception handler: every API error is `{"detail", "code", "request_id"}`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.reasons import reason

_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "AUTH_REQUIRED",
    drf_exceptions.AuthenticationFailed: "AUTH_INVALID_TOKEN",
    drf_exceptions.PermissionDenied: "CAPABILITY_MISSING",
    drf_exceptions.NotFound: "NOT_FOUND",
    drf_exceptions.ValidationError: "VALIDATION_FAILED",
    drf_exceptions.ParseError: "VALIDATION_FAILED",
    drf_exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    drf_exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    drf_exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    drf_exceptions.Throttled: "RATE_LIMITED",
}


def _request_id(context: dict[str, Any]) -> str | None:
    request = context.get("request")
    return getattr(request, "request_id", None) if request is not None else None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request_id = _request_id(context)
    if isinstance(exc, RequestDataTooBig):  # Django's own check, when a view reads request.body itself
        exc = ControlPlaneError("PAYLOAD_TOO_LARGE")
    if isinstance(exc, ControlPlaneError):
        headers = {"WWW-Authenticate": 'Bearer realm="api"'} if exc.status == 401 else None
        return Response({**exc.as_dict(), "request_id": request_id}, status=exc.status, headers=headers)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "reason_code", None)
    if code is None:
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "VALIDATION_FAILED")
    if isinstance(exc, drf_exceptions.ValidationError):
        body: dict[str, Any] = {"detail": "Invalid input.", "errors": response.data}
    else:
        body = {
            "detail": response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
        }
    body.update(code=code, request_id=request_id)
    response.data = body
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _json_error(request: HttpRequest, code: str, detail: str) -> JsonResponse:
    entry = reason(code)
    body = {"detail": detail, "code": code, "request_id": getattr(request, "request_id", None)}
    return JsonResponse(body, status=entry.status)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: JSON `NOT_FOUND` under /api/ (a path the router does not match names nothing else);
    Django's page elsewhere."""
    if _is_api(request):
        return _json_error(request, "NOT_FOUND", "no such endpoint")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON `INTERNAL_ERROR` under /api/, with the request id to find it in the logs."""
    if _is_api(request):
        return _json_error(request, "INTERNAL_ERROR", reason("INTERNAL_ERROR").description)
    return defaults.server_error(request)
