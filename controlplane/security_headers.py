"""Browser-facing hardening the framework does not do by itself (docs/security.md, OWASP ASVS 5.0):

- `SecurityHeadersMiddleware`: a Content-Security-Policy on every answer (ASVS 3.4.3, 3.4.6) and
  `Cache-Control: no-store` on every answer that states no caching of its own (14.3.2, 14.2.2). Static
  files are served before it by WhiteNoise, with their own long-lived caching. `TRACE` is refused on
  every path (405 `METHOD_NOT_ALLOWED`, 13.4.4), as Apache's `TraceEnable off` does. Signing out
  (console or admin) answers `Clear-Site-Data: "cache", "storage"` (14.3.1): the browser drops what htmx
  kept of the pages in its history cache.
- `SessionLifetimeMiddleware`: a console session ends after `CONTROLPLANE_SESSION_IDLE_SECONDS` without
  a request and, however active, `CONTROLPLANE_SESSION_MAX_SECONDS` after it began (7.3.1, 7.3.2; NIST SP
  800-63B AAL2: 30 minutes idle, 12 hours in all). Ending it is Django's `logout`: the session is flushed
  and the identity signals ledger `controlplane.identity.signout.completed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse

from controlplane.kernel.errors import ControlPlaneError

# Scripts only from this origin (htmx is vendored); `'unsafe-eval'` because htmx runs `hx-on` handlers
# through `Function`. No plugins, no <base>, never framed, forms post only here.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)

SIGN_OUT_VIEWS = frozenset({"console:logout", "admin:logout"})

SESSION_STARTED = "controlplane.session.started"
SESSION_SEEN = "controlplane.session.seen"
# The last-seen time is written at most this often (a session save per request would be a write per poll).
SEEN_RESOLUTION_SECONDS = 60


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = _trace_refused(request) if request.method == "TRACE" else self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Cache-Control", "no-store")
        match = getattr(request, "resolver_match", None)
        if request.method == "POST" and match is not None and match.view_name in SIGN_OUT_VIEWS:
            response.headers.setdefault("Clear-Site-Data", '"cache", "storage"')
        return response


class SessionLifetimeMiddleware:
    """After authentication: a signed-in session past its idle or absolute limit is signed out before the
    view runs, so the request is served as anonymous (the console sends it to sign-in, the API: 401)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user_before = getattr(request, "user", None)
        if _signed_in(request):
            now = int(time.time())
            started = request.session.get(SESSION_STARTED)
            seen = request.session.get(SESSION_SEEN)
            if started is None or seen is None:
                _stamp(request, now, started=True)
            elif (
                now - started > settings.CONTROLPLANE_SESSION_MAX_SECONDS
                or now - seen > settings.CONTROLPLANE_SESSION_IDLE_SECONDS
            ):
                logout(request)
            elif now - seen >= SEEN_RESOLUTION_SECONDS:
                _stamp(request, now, started=False)
        response = self.get_response(request)
        # `login()` replaces request.user: signed in (again) by this very request, the lifetime starts now.
        signed_in_now = _signed_in(request) and request.user is not user_before
        if signed_in_now or (_signed_in(request) and SESSION_STARTED not in request.session):
            _stamp(request, int(time.time()), started=True)
        return response


def _trace_refused(request: HttpRequest) -> HttpResponse:
    refusal = ControlPlaneError("METHOD_NOT_ALLOWED", "TRACE is not served")
    body = {**refusal.as_dict(), "request_id": getattr(request, "request_id", None)}
    return JsonResponse(body, status=refusal.status)


def _signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return user is not None and user.is_authenticated and hasattr(request, "session")


def _stamp(request: HttpRequest, now: int, *, started: bool) -> None:
    if started:
        request.session[SESSION_STARTED] = now
    request.session[SESSION_SEEN] = now
