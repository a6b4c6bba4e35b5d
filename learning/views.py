"""Console pages of the learning loop: the latest calibration report (the incident model with its
reliability diagram, the per-rule table, the agents), the anti-gaming findings (decided here by people,
htmx) and the proposals. Nothing here changes authoritative state."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import capability_required, form_refusal, refusal_response, render_page
from learning import metrics, services
from learning.models import CalibrationReport, Finding, FindingStatus, Proposal

READ, REVIEW = "learning.read", "learning.review"


class FindingDecisionForm(forms.Form):
    status = forms.ChoiceField(choices=[(s, s) for s in (FindingStatus.CONFIRMED, FindingStatus.DISMISSED)])
    reason = forms.CharField(max_length=500)


def _diagram(model: dict) -> str:
    bins = [
        metrics.Bin(b["lower"], b["upper"], b["count"], b["mean_forecast"], b["observed_rate"])
        for b in model.get("bins", [])
    ]
    # Built from numbers only (the report's own), escaped where text enters: safe to embed.
    return mark_safe(metrics.reliability_svg(bins, title="reliability of the promotion model"))  # noqa: S308


def _context(request: HttpRequest) -> dict:
    tenant = request.console_principal.tenant
    report = CalibrationReport.objects.filter(tenant=tenant).first()
    model = report.content["incident_model"] if report else {}
    return {
        "report": report,
        "overall": model.get("overall"),
        "rules": sorted(model.get("rules", {}).items()),
        "diagram": _diagram(model["overall"]) if model else "",
        "agents": report.content["agents"] if report else [],
        "autonomy": report.content["autonomy"] if report else [],
        "findings": Finding.objects.filter(tenant=tenant)[:200],
        "proposals": Proposal.objects.filter(tenant=tenant)[:50],
        "can_review": REVIEW in request.console_capabilities,
    }


@require_GET
@capability_required(READ)
def learning_page(request: HttpRequest) -> HttpResponse:
    return render_page(request, "learning/learning.html", "findings", _context(request))


@require_POST
@capability_required(READ, REVIEW)
def finding_decide(request: HttpRequest, fingerprint: str) -> HttpResponse:
    form = FindingDecisionForm(request.POST)
    target = f"#finding-{fingerprint[:16]}"
    if not form.is_valid():
        return refusal_response(request, form_refusal(form), target=target)
    try:
        services.finding_decide(actor=request.console_principal, fingerprint=fingerprint, **form.cleaned_data)
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal, target=target)
    return render_page(request, "learning/learning.html", "findings", _context(request))
