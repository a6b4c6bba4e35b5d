"""Browser-facing hardening the framework does not do by itself (docs/security.md, OWASP ASVS 5.0):

- `SecurityHeadersMiddleware`: a Content-Security-Policy on every answer (but signed ingest's, whose lean
  chain leaves it out: `controlplane.channels.ingest.lean.LEAN_SKIP`) (ASVS 3.4.3, 3.4.6) and
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

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse

from controlplane.identity import sessions
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
    view runs, so the request is served as anonymous (the console sends it to sign-in, the API: 401).
    The stamps are `controlplane.identity.sessions`'."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _signed_in(request):
            if sessions.STARTED not in request.session:
                sessions.session_signed_in(request.session)  # signed in before the lifetime was kept
            elif sessions.session_expired(request.session):
                logout(request)
            else:
                sessions.session_seen(request.session)
        return self.get_response(request)


def _trace_refused(request: HttpRequest) -> HttpResponse:
    refusal = ControlPlaneError("METHOD_NOT_ALLOWED", "TRACE is not served")
    body = {**refusal.as_dict(), "request_id": getattr(request, "request_id", None)}
    return JsonResponse(body, status=refusal.status)


def _signed_in(request: HttpRequest) -> bool:
    """Without a session cookie there is no session to end (and the session is left untouched)."""
    if settings.SESSION_COOKIE_NAME not in request.COOKIES or not hasattr(request, "session"):
        return False
    user = getattr(request, "user", None)
    return user is not None and user.is_authenticated
