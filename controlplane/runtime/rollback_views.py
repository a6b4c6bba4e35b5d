"""The console's rollback page: the completed steps of a trace's executions, each with the compensating
action that undoes it, and a form to roll one back through `services.rollback.step_rollback` (the same
service as the API and `manage.py rollback`)."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import (
    capability_required,
    form_refusal,
    refusal_response,
    render_page,
    wants_fragment,
)
from controlplane.runtime.models import Execution, Intent, StepRun, StepStatus
from controlplane.runtime.services.rollback import step_rollback
from skills.selectors import action_compensation


class RollbackForm(forms.Form):
    execution = forms.CharField(max_length=64)
    step = forms.CharField(max_length=63)
    reason = forms.CharField(max_length=2000)


def _context(request: HttpRequest, trace_id: str, *, message: str = "") -> dict:
    tenant = request.console_principal.tenant
    runs = (
        StepRun.objects.filter(
            execution__tenant=tenant, execution__trace_id=trace_id, status=StepStatus.COMPLETED
        )
        .select_related("step", "execution")
        .order_by("execution__started_at", "step__position")
    )
    rolled = {
        (
            i.draft.get("context", {}).get("rollback_of_execution"),
            i.draft.get("context", {}).get("rollback_of_step"),
        ): i
        for i in Intent.objects.filter(
            tenant=tenant, trace_id=trace_id, draft__context__has_key="rollback_of_step"
        )
    }
    rows = [
        {
            "run": run,
            "compensation": action_compensation(name=run.step.action, version=run.step.action_version),
            "rollback": rolled.get((run.execution_id, run.step.key)),
        }
        for run in runs
    ]
    return {"trace_id": trace_id, "rows": rows, "message": message}


@require_http_methods(["GET", "POST"])
@capability_required("executions.read")
def trace_rollback(request: HttpRequest, trace_id: str) -> HttpResponse:
    """GET: what in this trace can be undone; POST (needs intents.submit): roll one step back."""
    tenant = request.console_principal.tenant
    if not Execution.objects.filter(tenant=tenant, trace_id=trace_id).exists():
        return refusal_response(
            request, ControlPlaneError("NOT_FOUND", "no execution of your tenant in this trace")
        )
    if request.method == "GET":
        return render_page(request, "runtime/rollback.html", "rollback", _context(request, trace_id))
    principal = request.console_principal
    if not principal.has_capability("intents.submit"):
        return refusal_response(
            request, ControlPlaneError("CAPABILITY_MISSING", f"{principal.ref} lacks 'intents.submit'")
        )
    form = RollbackForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    data = form.cleaned_data
    execution = Execution.objects.filter(
        pk=data["execution"], tenant=principal.tenant, trace_id=trace_id
    ).first()
    if execution is None:
        return refusal_response(request, ControlPlaneError("NOT_FOUND", "no such execution in this trace"))
    try:
        intent = step_rollback(
            execution=execution, step_key=data["step"], actor=principal, reason=data["reason"]
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    if intent.rejection:
        return refusal_response(
            request, ControlPlaneError(intent.rejection["code"], intent.rejection["detail"])
        )
    if not wants_fragment(request):
        return redirect("runtime:trace-rollback", trace_id=trace_id)
    message = f"Rollback of {data['step']} submitted: intent {intent.id[:12]} ({intent.status})."
    return render_page(
        request, "runtime/rollback.html", "rollback", _context(request, trace_id, message=message)
    )
