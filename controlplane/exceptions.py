"""One DRF exception handler: every API error is `{"detail", "code", "request_id"}`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from controlplane.kernel.errors import ControlPlaneError

_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "AUTH_REQUIRED",
    drf_exceptions.AuthenticationFailed: "AUTH_INVALID_TOKEN",
    drf_exceptions.PermissionDenied: "CAPABILITY_MISSING",
    drf_exceptions.NotFound: "NOT_FOUND",
    drf_exceptions.ValidationError: "VALIDATION_FAILED",
    drf_exceptions.ParseError: "VALIDATION_FAILED",
    drf_exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    drf_exceptions.Throttled: "RATE_LIMITED",
}


def _request_id(context: dict[str, Any]) -> str | None:
    request = context.get("request")
    return getattr(request, "request_id", None) if request is not None else None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request_id = _request_id(context)
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
