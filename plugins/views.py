"""Console pages of the plugins app: plugin health (states, reasons, evidence, the dependency graph), one
plugin (its evidence and its timeline from the ledger), and the quarantine review queue (htmx, bulk
decisions as in the approval queue). Every write is one call of a `plugins.services` function, the same
the API and the CLI call; releases go through the approval queue."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import (
    capability_required,
    form_refusal,
    refusal_response,
    render_page,
    wants_fragment,
)
from plugins import selectors, services
from plugins.models import PluginState

READ = "plugins.read"
REVIEW = "plugins.review"
MANAGE = "plugins.manage"
POLL_SECONDS = 5


@require_GET
@capability_required(READ)
def health(request: HttpRequest) -> HttpResponse:
    """Every plugin in reach: state, reasons, last evidence, and the dependency graph (dependency order)."""
    plugins = list(selectors.plugins_visible(principal=request.console_principal))
    context = {
        "rows": [{"plugin": p, "health": selectors.plugin_health(p)} for p in plugins],
        "graph": selectors.dependency_graph(plugins),
        "summary": selectors.health_summary(plugins),
        "poll_seconds": POLL_SECONDS,
    }
    return render_page(request, "plugins/health.html", "health", context)


@require_GET
@capability_required(READ)
def detail(request: HttpRequest, name: str) -> HttpResponse:
    """One plugin: its state and why, its evidence, its manifest, its open reviews and its ledger timeline."""
    plugin = selectors.plugin_visible(principal=request.console_principal, name=name)
    if plugin is None:
        return refusal_response(
            request, ControlPlaneError("PLUGIN_NOT_FOUND", f"no plugin {name!r} in reach")
        )
    context = {
        "plugin": plugin,
        "health": selectors.plugin_health(plugin),
        "timeline": selectors.plugin_timeline(plugin),
        "reviews": list(plugin.review_items.order_by("-opened_at")[:20]),
        "can_manage": MANAGE in request.console_capabilities,
        "quarantined": plugin.state == PluginState.QUARANTINED,
    }
    return render_page(request, "plugins/detail.html", "detail", context)


class ReviewDecisionForm(forms.Form):
    item = forms.TypedMultipleChoiceField(coerce=int, choices=(), required=True)
    decision = forms.ChoiceField(choices=[("quarantine", "quarantine"), ("dismiss", "dismiss")])
    reason = forms.CharField(max_length=2000, strip=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any integer: whether the item exists and is in reach is the service's answer (NOT_FOUND).
        self.fields["item"].valid_value = lambda value: str(value).isdigit()


def _reviews_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "items": list(selectors.reviews_open(principal=request.console_principal)[:200]),
        "can_review": REVIEW in request.console_capabilities,
        "poll_seconds": POLL_SECONDS,
    }


@require_GET
@capability_required(READ)
def reviews(request: HttpRequest) -> HttpResponse:
    """The quarantine review queue: low-severity degradations with the evidence the supervisor saw."""
    return render_page(request, "plugins/reviews.html", "reviews", _reviews_context(request))


@require_POST
@capability_required(REVIEW)
def reviews_decide(request: HttpRequest) -> HttpResponse:
    """Quarantine or dismiss the selected items with one reason; each item's outcome is shown."""
    form = ReviewDecisionForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    data = form.cleaned_data
    try:
        outcomes = services.review_decide_bulk(
            item_ids=data["item"],
            actor=request.console_principal,
            decision=data["decision"],
            reason=data["reason"],
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    if not wants_fragment(request):
        return redirect(reverse("plugins:reviews"))
    done = [o for o in outcomes if "status" in o]
    refused = [o for o in outcomes if "code" in o]
    verb = "dismissed" if data["decision"] == "dismiss" else "quarantined"
    message = f"{len(done)} item{'s' if len(done) != 1 else ''} {verb}"
    if refused:
        message += "; refused: " + ", ".join(f"{o['item']} {o['code']}" for o in refused)
    context = {**_reviews_context(request), "decided": message + "."}
    return render_page(request, "plugins/reviews.html", "reviews", context)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, strip=True)


@require_POST
@capability_required(MANAGE)
def release(request: HttpRequest, name: str) -> HttpResponse:
    """Ask for a release: an approval request (plugins.release) that appears in the approval queue."""
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    try:
        services.plugin_release_request(
            name=name, actor=request.console_principal, reason=form.cleaned_data["reason"]
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    return redirect(reverse("approvals:queue") + "?kind=plugins.release")


def panel_context(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's plugin panel: counts by state and open reviews."""
    plugins = list(selectors.plugins_visible(principal=request.console_principal))
    summary = selectors.health_summary(plugins)
    return {
        "plugin_counts": summary["counts"],
        "plugin_total": len(plugins),
        "reviews_open": selectors.reviews_open(principal=request.console_principal).count(),
    }


def nav_count(request: HttpRequest) -> int:
    """The navigation badge: open quarantine-review items of the plugins in the viewer's reach; one query."""
    from plugins.models import ReviewItem, ReviewStatus

    visible = selectors.plugins_visible(principal=request.console_principal)
    return ReviewItem.objects.filter(plugin__in=visible, status=ReviewStatus.OPEN).count()
