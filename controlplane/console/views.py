"""The console shell: sign-in, the dashboard (the panels the apps register) and the ledger explorer.

Each view serves its whole page, or just the fragment an htmx request swaps (`kernel.pages.render_page`).
Every view but sign-in and sign-out is wrapped in `capability_required` (deny by default). The apps' own
pages live in the apps (`<app>/views.py`, `urls_console.py`, `templates/<app>/`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from controlplane.console import selectors
from controlplane.console.context_processors import nav_items
from controlplane.console.forms import LedgerFilterForm
from controlplane.identity import services as identity_services
from controlplane.kernel import navigation
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import (
    capability_required,
    refusal_response,
    render_page,
    wants_fragment,
)
from controlplane.ledger.selectors import event_verify, pretty_json
from controlplane.ledger.verify import verification_record

# --- Sign-in ---------------------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Django's sign-in, refused per source once it has failed too often (AUTH_THROTTLED, 429).

    The throttle is checked before the password is: a throttled source learns nothing, and — since the
    identity signals are never fired — writes nothing to the ledger.
    """

    template_name = "console/login.html"

    def get_template_names(self) -> list[str]:
        return [f"{self.template_name}#signin"] if wants_fragment(self.request) else [self.template_name]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().dispatch(request, *args, **kwargs)
        patch_vary_headers(response, ("HX-Request",))
        return response

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            identity_services.auth_throttle_check(source=identity_services.client_source(request.META))
        except ControlPlaneError as refusal:
            context = self.get_context_data(form=self.get_form_class()(request), refusal=refusal)
            return self.render_to_response(context, status=refusal.status)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        """A wrong password (or an inactive user) is AUTH_INVALID_CREDENTIALS; an empty field is invalid."""
        code = "AUTH_INVALID_CREDENTIALS" if form.has_error(NON_FIELD_ERRORS) else "VALIDATION_FAILED"
        refusal = ControlPlaneError(code)
        return self.render_to_response(
            self.get_context_data(form=form, refusal=refusal), status=refusal.status
        )


login = LoginView.as_view()
logout = auth_views.LogoutView.as_view()  # POST only (Django 5); ledgered by the identity signals


# --- Dashboard -------------------------------------------------------------------------------------

INTEGRITY_TEMPLATE = "console/panels/integrity.html"


def integrity_context(request: HttpRequest) -> dict[str, Any]:
    """The ledger integrity panel: chain head, last checkpoint, last verification (three queries)."""
    can_read = "ledger.read" in request.console_capabilities
    return {
        "status": selectors.chain_status() if can_read else None,
        "can_read_ledger": can_read,
        "can_verify": "ledger.verify" in request.console_capabilities,
    }


def recent_events_context(request: HttpRequest) -> dict[str, Any]:
    """The recent events panel: the last events the viewer may read (one query)."""
    return {"recent": selectors.recent_events(principal=request.console_principal)}


def ingest_rejections_context(request: HttpRequest) -> dict[str, Any]:
    """The ingest refusals panel: counters of the viewer's tenant and of unknown senders."""
    return {"rejections": selectors.ingest_rejections(principal=request.console_principal)}


@require_GET
@capability_required()
def dashboard(request: HttpRequest) -> HttpResponse:
    """What needs the viewer now: every panel the apps registered that the viewer may see (pending
    approvals, open incidents, executions, ledger integrity, recent events, ingest refusals), and — loudly,
    as a banner — any engaged kill switch.

    The panels' contexts are merged into the page's (each panel names its own keys), so each panel's
    fragment renders in the page exactly as its `/panels/<name>/` fragment does.
    """
    if wants_fragment(request):  # the polled fragment of `/` is the integrity panel alone, as it always was
        return render_page(request, INTEGRITY_TEMPLATE, "panel", integrity_context(request))
    shown = navigation.panels(capabilities=request.console_capabilities)
    context: dict[str, Any] = {}
    for shown_panel in shown:
        context.update(shown_panel.context(request))
    context["panel_templates"] = [f"{shown_panel.template}#panel" for shown_panel in shown]
    return render_page(request, "console/dashboard.html", "panels", context)


@require_GET
@capability_required()
def panel(request: HttpRequest, name: str) -> HttpResponse:
    """One dashboard panel: the fragment its htmx poll swaps, or a page holding it alone.

    Refused (CAPABILITY_MISSING) when the viewer lacks the panel's capability, as its page would be.
    """
    found = navigation.panel_get(name)
    if found is None:
        return refusal_response(request, ControlPlaneError("NOT_FOUND", f"no dashboard panel {name!r}"))
    if found.capability is not None and found.capability not in request.console_capabilities:
        return refusal_response(
            request,
            ControlPlaneError(
                "CAPABILITY_MISSING", f"{request.console_principal.ref} lacks {found.capability!r}"
            ),
        )
    return render_page(request, found.template, "panel", found.context(request))


@require_GET
@capability_required()
def nav(request: HttpRequest) -> HttpResponse:
    """The top bar with its badges: how many things wait for the viewer behind each entry it may open
    (pending approvals, open incidents, review queues: each app's registered `count`). The fragment is
    what every page's bar swaps in once loaded and every 30 seconds (marking the page it sits on, named by
    `HX-Current-URL`); the whole page lists the same entries and counts."""
    held = request.console_capabilities
    current = ""
    if wants_fragment(request) and request.htmx.current_url_abs_path:
        try:
            current = resolve(urlsplit(request.htmx.current_url_abs_path).path).view_name
        except Resolver404:
            current = ""
    items = nav_items(
        capabilities=held, current=current, counts=navigation.nav_counts(request, capabilities=held)
    )
    return render_page(request, "console/nav.html", "nav", {"nav_counted": items})


@require_POST
@capability_required("ledger.verify")
def verify(request: HttpRequest) -> HttpResponse:
    """Verify the whole chain now; htmx gets the refreshed integrity panel out of band."""
    verification_record()
    if not wants_fragment(request):
        return redirect("console:dashboard")
    return render_page(request, INTEGRITY_TEMPLATE, "panel", {**integrity_context(request), "oob": True})


# --- Ledger explorer -------------------------------------------------------------------------------


@require_GET
@capability_required("ledger.read")
def ledger(request: HttpRequest) -> HttpResponse:
    """Events visible to the principal, filtered, newest first, paged by seq cursor."""
    principal = request.console_principal
    form = LedgerFilterForm(request.GET, principal=principal)
    if not form.is_valid():
        refusal = ControlPlaneError("VALIDATION_FAILED", "; ".join(_form_errors(form)))
        return render_page(
            request, "console/ledger.html", "results", {"form": form, "refusal": refusal}, status=400
        )
    page = selectors.ledger_page(
        principal=principal,
        filters=form.filters(),
        before=form.cleaned_data["before"],
        after=form.cleaned_data["after"],
    )
    context = {
        "form": form,
        "page": page,
        "newer_href": _ledger_href(form, "after", page.newer_than),
        "older_href": _ledger_href(form, "before", page.older_than),
    }
    return render_page(request, "console/ledger.html", "results", context)


@require_GET
@capability_required("ledger.read")
def event(request: HttpRequest, seq: int) -> HttpResponse:
    """One event: its envelope, payload, the stored canonical bytes, and its verification."""
    found = selectors.event_get(principal=request.console_principal, seq=seq)
    if found is None:
        return refusal_response(request, ControlPlaneError("NOT_FOUND", f"no visible ledger event {seq}"))
    context = {
        "event": found,
        "data_json": pretty_json(found.data),
        "provenance_json": pretty_json(found.provenance),
        "verification": event_verify(event=found),
    }
    return render_page(request, "console/event.html", "event", context)


def _ledger_href(form: LedgerFilterForm, cursor: str, seq: int | None) -> str:
    if seq is None:
        return ""
    query = "&".join(filter(None, [form.filter_query(), f"{cursor}={seq}"]))
    return f"{reverse('console:ledger')}?{query}"


def _form_errors(form: LedgerFilterForm) -> list[str]:
    return [
        f"{form.fields[name].label or name}: {message}" if name != "__all__" else message
        for name, messages in form.errors.items()
        for message in messages
    ]


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's CSRF refusal, in the console's shape: 403 with CSRF_FAILED (settings.CSRF_FAILURE_VIEW)."""
    return refusal_response(
        request, ControlPlaneError("CSRF_FAILED", f"the form's CSRF token was refused: {reason}")
    )
