"""The console page toolkit every app's views use. Deny by default: every console view is wrapped in
`capability_required`.

An anonymous visitor is sent to the login page; a signed-in user without an active principal gets
AUTH_NO_PRINCIPAL, and a principal lacking a capability gets CAPABILITY_MISSING — both as a 403 page
that names the reason code, the same code the API would answer with.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect, push_url, reswap, retarget

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.navigation import nav_entries

CONSOLE_CAPABILITY = "console.view"

View = Callable[..., HttpResponse]

# (user) -> (active principal or None, the capabilities it holds now). The identity app registers it
# from its AppConfig.ready(): the kernel knows no models.
PrincipalResolver = Callable[[Any], tuple[Any, frozenset[str]]]
_principal_resolver: PrincipalResolver | None = None


def register_principal_resolver(resolver: PrincipalResolver) -> None:
    """Name the function that finds a signed-in user's principal (identity's `console_principal`)."""
    global _principal_resolver
    _principal_resolver = resolver


def _resolve_principal(user: Any) -> tuple[Any, frozenset[str]]:
    if _principal_resolver is None:  # fail closed: no identity app, nobody gets in
        return None, frozenset()
    return _principal_resolver(user=user)


def wants_fragment(request: HttpRequest) -> bool:
    """True for an htmx request that swaps part of a page (boosted and history-restore get whole pages)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page(
    request: HttpRequest,
    template: str,
    fragment: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> HttpResponse:
    """Render the whole page, or only its `{% partialdef %}` fragment for an htmx swap."""
    name = f"{template}#{fragment}" if wants_fragment(request) else template
    response = render(request, name, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


def refusal_response(
    request: HttpRequest,
    refusal: ControlPlaneError,
    *,
    target: str = "#notice",
    back: str | None = None,
) -> HttpResponse:
    """The console's answer to a refused request: the reason code, with the catalogue's status.

    For an htmx swap the refusal goes to `target` (the page's notice area unless the view names a nearer
    one, such as the card it concerns) instead of the element that asked, and the URL bar keeps the page
    the operator is on. A whole refusal page carries a way back (`way_back`): where the operator came
    from, and the list of the app the page belongs to (or `back`, when the view names one).
    """
    context: dict[str, Any] = {"refusal": refusal}
    fragment = wants_fragment(request)
    if not fragment:
        context["way_back"] = way_back(request, back=back)
    response = render_page(request, "console/refused.html", "refusal", context, status=refusal.status)
    if fragment:
        retarget(response, target)
        reswap(response, "innerHTML")
        push_url(response, False)
    return response


def way_back(request: HttpRequest, *, back: str | None = None) -> list[tuple[str, str]]:
    """(label, href) links out of a refusal page: the page the operator came from (the Referer, only when
    it is this site's and not the refused page itself), then the list of the app the refused page belongs
    to (its registered navigation entry, when the viewer may open it; `back` when the view names one),
    else the dashboard. GitHub's and Grafana's error pages do the same: back, and home."""
    links: list[tuple[str, str]] = []
    here = request.get_full_path()
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        path = urlsplit(referer)
        came_from = path.path + (f"?{path.query}" if path.query else "")
        if came_from and came_from != here:
            links.append(("← Back to where you came from", came_from))
    listing = back or _app_list(request)
    if listing and listing != here and listing not in {href for _, href in links}:
        links.append(("Back to the list", listing))
    if not links:
        links.append(("Dashboard", "/"))
    return links


def _app_list(request: HttpRequest) -> str:
    """The href of the navigation entry of the app the request's view belongs to (its list page)."""
    match = getattr(request, "resolver_match", None)
    namespace = match.namespace if match else ""
    if not namespace:
        return ""
    held = getattr(request, "console_capabilities", frozenset())
    for entry in nav_entries(capabilities=held):
        if entry.url_name.split(":", 1)[0] == namespace:
            try:
                return reverse(entry.url_name)
            except NoReverseMatch:
                return ""
    return ""


def capability_required(*capabilities: str) -> Callable[[View], View]:
    """Wrap a console view: it needs a signed-in user whose principal holds `console.view` and `capabilities`.

    The principal and its capabilities are put on the request (`request.console_principal`,
    `request.console_capabilities`) for the view and the layout, so they are read once per request.
    """
    required = (CONSOLE_CAPABILITY, *(c for c in capabilities if c != CONSOLE_CAPABILITY))

    def decorator(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return _to_login(request)
            principal, held = _resolve_principal(request.user)
            if principal is None:
                return refusal_response(
                    request,
                    ControlPlaneError(
                        "AUTH_NO_PRINCIPAL", f"user {request.user.get_username()} has no active principal"
                    ),
                )
            request.console_principal = principal
            request.console_capabilities = held
            missing = [capability for capability in required if capability not in held]
            if missing:
                return refusal_response(
                    request,
                    ControlPlaneError("CAPABILITY_MISSING", f"{principal.ref} lacks {missing[0]!r}"),
                )
            return view(request, *args, **kwargs)

        guarded.required_capabilities = required  # read by the test that every console URL is guarded
        return guarded

    return decorator


def _to_login(request: HttpRequest) -> HttpResponse:
    if wants_fragment(request):
        # A 302 inside an htmx request would swap the login page into a fragment; send the browser there.
        current = request.htmx.current_url_abs_path or request.get_full_path()
        return HttpResponseClientRedirect(redirect_to_login(current).url)
    return redirect_to_login(request.get_full_path())


def form_refusal(form: Any) -> ControlPlaneError:
    """A form's errors as one VALIDATION_FAILED refusal, each prefixed with its field's label."""
    errors = [
        f"{form.fields[name].label or name}: {message}" if name in form.fields else message
        for name, messages in form.errors.items()
        for message in messages
    ]
    return ControlPlaneError("VALIDATION_FAILED", "; ".join(errors))
