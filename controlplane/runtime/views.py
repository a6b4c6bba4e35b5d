"""Console pages of the runtime: executions, the trace explorer, the kill switch; the executions panel
and the kill switch banner.

Same rules as every console page: every view is wrapped in `capability_required`, serves its whole
page or the fragment an htmx request swaps (`render_page`), and answers a refusal with its reason code
(`refusal_response`). Every write goes through the owning app's services, in one transaction.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import (
    capability_required,
    form_refusal,
    refusal_response,
    render_page,
    wants_fragment,
)
from controlplane.ledger.selectors import event_receipt, event_verify, pretty_json
from controlplane.runtime import selectors
from controlplane.runtime import services as runtime
from controlplane.runtime.forms import ExecutionFilterForm, HeldDecisionForm, KillSwitchForm
from controlplane.runtime.traces import TRACE_ID, trace_get

READ = "executions.read"
KILLSWITCH = "killswitch.manage"


# --- Executions --------------------------------------------------------------------------------------


@require_GET
@capability_required(READ)
def executions(request: HttpRequest) -> HttpResponse:
    """The tenant's executions, those waiting first (oldest first), then newest first; each in words, with
    its duration and a link to its trace."""
    form = ExecutionFilterForm(request.GET)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    status = form.cleaned_data["status"] or ""
    page = selectors.executions_page(
        principal=request.console_principal,
        status=status,
        page=form.cleaned_data["page"] or 1,
        now=timezone.now(),
    )
    base = reverse("runtime:executions")
    prefix = f"{base}?status={status}&" if status else f"{base}?"
    context = {
        "form": form,
        "page": page,
        "prev_href": f"{prefix}page={page.previous_page_number()}" if page.has_previous() else "",
        "next_href": f"{prefix}page={page.next_page_number()}" if page.has_next() else "",
    }
    return render_page(request, "runtime/executions.html", "results", context)


# --- Traces ------------------------------------------------------------------------------------------


@require_GET
@capability_required(READ)
def trace_find(request: HttpRequest) -> HttpResponse:
    """The trace id form: go to `/traces/<id>/`."""
    trace_id = request.GET.get("trace_id", "").strip().lower()
    if not TRACE_ID.match(trace_id):
        return refusal_response(
            request, ControlPlaneError("TRACE_ID_INVALID", "a trace id is 32 lowercase hex digits")
        )
    return redirect("runtime:trace", trace_id=trace_id)


@require_GET
@capability_required(READ)
def trace(request: HttpRequest, trace_id: str) -> HttpResponse:
    """The trace explorer: the tree as a timeline, every node's ledger event verified."""
    try:
        found = trace_get(trace_id=trace_id, tenant=request.console_principal.tenant)
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    verification = selectors.trace_verify(trace=found)
    seqs = found.seqs()
    context = {
        "trace": found,
        "verification": verification,
        "rows": selectors.trace_rows(trace=found, verification=verification),
        "outcomes": selectors.trace_outcomes(trace=found),
        "headers": selectors.trace_headers(trace=found, now=timezone.now()),
        "first_seq": seqs[0] if seqs else None,
        "last_seq": seqs[-1] if seqs else None,
    }
    return render_page(request, "runtime/trace.html", "trace", context)


@require_GET
@capability_required(READ)
def trace_event(request: HttpRequest, trace_id: str, seq: int) -> HttpResponse:
    """One node's ledger event, expanded in place: its payload and its verification."""
    try:
        found = trace_get(trace_id=trace_id, tenant=request.console_principal.tenant)
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    event = selectors.trace_event_get(trace=found, seq=seq)
    if event is None:
        return refusal_response(
            request, ControlPlaneError("NOT_FOUND", f"event {seq} is not part of trace {found.trace_id}")
        )
    context = {
        "trace": found,
        "event": event,
        "data_json": pretty_json(event.data),
        "verification": event_verify(event=event),
    }
    return render_page(request, "runtime/trace_event.html", "event", context)


@require_GET
@capability_required(READ, "ledger.read")
def trace_receipt(request: HttpRequest, trace_id: str, seq: int) -> HttpResponse:
    """Download one node's receipt: its event, the RFC 9162 inclusion proof and the newest signed,
    witnessed tree head (`manage.py ledger verify-receipt` checks it with pinned keys and no database)."""
    try:
        found = trace_get(trace_id=trace_id, tenant=request.console_principal.tenant)
        event = selectors.trace_event_get(trace=found, seq=seq)
        if event is None:
            raise ControlPlaneError("NOT_FOUND", f"event {seq} is not part of trace {found.trace_id}")
        receipt = event_receipt(seq=event.seq)
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    response = HttpResponse(json.dumps(receipt, indent=1, sort_keys=True), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="receipt-{event.seq}.json"'
    return response


# --- Kill switch -------------------------------------------------------------------------------------


def _killswitch_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    principal = request.console_principal
    status = selectors.killswitch_status(principal=principal)
    held = selectors.killswitch_held_executions(principal=principal)
    rows = [(switch, selectors.killswitch_holding(switch=switch, held=held)) for switch in status.switches]
    return {"status": status, "rows": rows, "held": held, "scopes": ["global", "tenant", "action"], **extra}


@require_GET
@capability_required(KILLSWITCH)
def killswitch(request: HttpRequest) -> HttpResponse:
    """Every switch and its state; engage (with a scope and a reason) or release."""
    return render_page(request, "runtime/killswitch.html", "switches", _killswitch_context(request))


@require_POST
@capability_required(KILLSWITCH)
def killswitch_change(request: HttpRequest) -> HttpResponse:
    """Engage or release one switch through `runtime.services.killswitch_set` (ledgered, reasoned)."""
    form = KillSwitchForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    data = form.cleaned_data
    target = "" if data["scope"] == "global" else data["target"]
    try:
        switch = runtime.killswitch_set(
            scope=data["scope"],
            target=target,
            engaged=data["engaged"],
            reason=data["reason"],
            actor=request.console_principal,
            held=data["held"] or "decide",
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    if not wants_fragment(request):
        return redirect("runtime:killswitch")
    state = "engaged" if switch.engaged else "released"
    message = f"Kill switch {switch.scope}:{switch.target or '*'} {state}."
    if not switch.engaged:
        done = switch.held_result
        message += (
            f" Held work: {done['resumed']} step(s) resumed, {done['cancelled']} execution(s) cancelled,"
            f" {done['still_held']} step(s) still held."
        )
    return render_page(
        request, "runtime/killswitch.html", "switches", _killswitch_context(request, changed=message)
    )


@require_POST
@capability_required(KILLSWITCH)
def killswitch_held_decide(request: HttpRequest) -> HttpResponse:
    """Resume or cancel one execution the kill switch held (`runtime.services.killswitch_held_decide`)."""
    form = HeldDecisionForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    data = form.cleaned_data
    principal = request.console_principal
    execution = selectors.killswitch_decidable_execution(principal=principal, execution_id=data["execution"])
    try:
        if execution is None:
            raise ControlPlaneError("NOT_FOUND", f"no execution {data['execution']} visible to you")
        runtime.killswitch_held_decide(
            execution=execution, decision=data["decision"], reason=data["reason"], actor=principal
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    if not wants_fragment(request):
        return redirect("runtime:killswitch")
    done = "resumed" if data["decision"] == "resume" else "cancelled"
    message = f"Execution {execution.pk[:12]} {done}."
    return render_page(
        request, "runtime/killswitch.html", "switches", _killswitch_context(request, changed=message)
    )


# --- Dashboard panel and banner ------------------------------------------------------------------------


def panel_context(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's executions panel: running, waiting for approval, failed in the last day; one query."""
    return {
        "counts": selectors.execution_counts(principal=request.console_principal, now=timezone.now()),
        "failed_window_hours": int(selectors.FAILED_WINDOW.total_seconds() // 3600),
    }


def killswitch_banner_context(request: HttpRequest) -> dict[str, Any]:
    """The engaged switches holding the viewer's tenant, for the banner pages shout them with; one query."""
    principal = getattr(request, "console_principal", None)
    if principal is None:
        return {"killswitches": []}
    return {"killswitches": selectors.killswitch_engaged_for_principal(principal=principal)}
