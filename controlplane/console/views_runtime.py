"""Console pages of the action flow: the approval queue, executions, the trace explorer, the kill switch.

Same rules as the shell (`views.py`): every view is wrapped in `capability_required`, serves its whole
page or the fragment an htmx request swaps (`render_page`), and answers a refusal with its reason code
(`refusal_response`). Every write goes through the owning app's services, in one transaction.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from approvals import services as approvals
from controlplane.console import selectors_runtime as selectors
from controlplane.console.forms import (
    ApprovalQueueForm,
    BulkDecisionForm,
    DecisionForm,
    ExecutionFilterForm,
    KillSwitchForm,
)
from controlplane.console.selectors import event_verify, pretty_json
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import capability_required, refusal_response, render_page, wants_fragment
from controlplane.runtime import services as runtime
from controlplane.runtime.traces import TRACE_ID, trace_get

QUEUE_POLL_SECONDS = 5


def _invalid(form: Any) -> ControlPlaneError:
    errors = [
        f"{form.fields[name].label or name}: {message}" if name in form.fields else message
        for name, messages in form.errors.items()
        for message in messages
    ]
    return ControlPlaneError("VALIDATION_FAILED", "; ".join(errors))


# --- Approval queue ----------------------------------------------------------------------------------


def _queue_context(request: HttpRequest, form: ApprovalQueueForm) -> dict[str, Any]:
    principal = request.console_principal
    queue = selectors.approval_queue(
        principal=principal,
        filters=form.filters(),
        page=form.cleaned_data.get("page") or 1,
        now=timezone.now(),
    )
    base = reverse("console:approvals")
    page = queue.page
    return {
        "form": form,
        "queue": queue,
        "can_decide": "approvals.decide" in request.console_capabilities,
        "poll_seconds": QUEUE_POLL_SECONDS,
        "poll_href": f"{base}?{form.filter_query()}",
        "prev_href": f"{base}?{form.filter_query(page=page.previous_page_number())}"
        if page.has_previous()
        else "",
        "next_href": f"{base}?{form.filter_query(page=page.next_page_number())}" if page.has_next() else "",
        "killswitches": selectors.killswitch_engaged_for_principal(principal=principal),
    }


@require_GET
@capability_required("approvals.read")
def approvals_queue(request: HttpRequest) -> HttpResponse:
    """Pending approval requests with what exactly is approved, why, and the plan around it.

    The `queue` fragment is what the page polls every few seconds and what a decision answers with.
    """
    form = ApprovalQueueForm(request.GET, principal=request.console_principal)
    if not form.is_valid():
        return refusal_response(request, _invalid(form))
    return render_page(request, "console/approvals.html", "queue", _queue_context(request, form))


def _after_decision(request: HttpRequest, message: str) -> HttpResponse:
    """htmx: the refreshed queue, with the filters of the page the operator is on, and a notice.

    Without htmx: back to the queue (post/redirect/get).
    """
    if not wants_fragment(request):
        return redirect(reverse("console:approvals"))
    current = urlsplit(request.htmx.current_url or "")
    form = ApprovalQueueForm(QueryDict(current.query), principal=request.console_principal)
    if not form.is_valid():  # the address bar held something odd: show the unfiltered queue
        form = ApprovalQueueForm(QueryDict(), principal=request.console_principal)
        form.is_valid()
    context = {**_queue_context(request, form), "decided": message}
    return render_page(request, "console/approvals.html", "queue", context)


@require_POST
@capability_required("approvals.decide")
def approval_decide(request: HttpRequest, request_id: str) -> HttpResponse:
    """Approve or reject one request, bound to the content hash the operator saw."""
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, _invalid(form))
    target = selectors.queue_request_get(principal=request.console_principal, request_id=request_id)
    if target is None:
        return refusal_response(
            request, ControlPlaneError("APPROVAL_NOT_FOUND", f"no approval request {request_id!r}")
        )
    data = form.cleaned_data
    try:
        decided = approvals.approval_decide(
            request=target,
            actor=request.console_principal,
            decision=data["decision"],
            reason=data["reason"],
            content_hash=data["content_hash"],
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    verb = "approved" if data["decision"] == "approve" else "rejected"
    outcome = decided.status if decided.status != "pending" else f"{verb}; waiting for more approvers"
    return _after_decision(request, f"Request {decided.pk[:12]}: {outcome}.")


@require_POST
@capability_required("approvals.decide")
def approvals_bulk_decide(request: HttpRequest) -> HttpResponse:
    """One decision and one reason for every selected request: all of them, or none (like the API)."""
    form = BulkDecisionForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, _invalid(form))
    data = form.cleaned_data
    items = data["request"]
    visible = selectors.queue_requests_get(
        principal=request.console_principal, request_ids=[request_id for request_id, _ in items]
    )
    try:
        with transaction.atomic():
            for request_id, content_hash in items:
                target = visible.get(request_id)
                if target is None:
                    raise ControlPlaneError("APPROVAL_NOT_FOUND", f"no approval request {request_id!r}")
                try:
                    approvals.approval_decide(
                        request=target,
                        actor=request.console_principal,
                        decision=data["decision"],
                        reason=data["reason"],
                        content_hash=content_hash,
                    )
                except ControlPlaneError as refusal:
                    raise ControlPlaneError(
                        refusal.code,
                        f"request {request_id[:12]}: {refusal.detail} — nothing was decided",
                        extra={"request": request_id},
                    ) from refusal
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    verb = "Approved" if data["decision"] == "approve" else "Rejected"
    return _after_decision(request, f"{verb} {len(items)} request{'s' if len(items) != 1 else ''}.")


# --- Executions --------------------------------------------------------------------------------------


@require_GET
@capability_required("executions.read")
def executions(request: HttpRequest) -> HttpResponse:
    """The tenant's executions, newest first; each links to its trace."""
    form = ExecutionFilterForm(request.GET)
    if not form.is_valid():
        return refusal_response(request, _invalid(form))
    status = form.cleaned_data["status"] or ""
    page = selectors.executions_page(
        principal=request.console_principal, status=status, page=form.cleaned_data["page"] or 1
    )
    base = reverse("console:executions")
    prefix = f"{base}?status={status}&" if status else f"{base}?"
    context = {
        "form": form,
        "page": page,
        "prev_href": f"{prefix}page={page.previous_page_number()}" if page.has_previous() else "",
        "next_href": f"{prefix}page={page.next_page_number()}" if page.has_next() else "",
    }
    return render_page(request, "console/executions.html", "results", context)


# --- Traces ------------------------------------------------------------------------------------------


@require_GET
@capability_required("executions.read")
def trace_find(request: HttpRequest) -> HttpResponse:
    """The trace id form: go to `/traces/<id>/`."""
    trace_id = request.GET.get("trace_id", "").strip().lower()
    if not TRACE_ID.match(trace_id):
        return refusal_response(
            request, ControlPlaneError("TRACE_ID_INVALID", "a trace id is 32 lowercase hex digits")
        )
    return redirect("console:trace", trace_id=trace_id)


@require_GET
@capability_required("executions.read")
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
        "first_seq": seqs[0] if seqs else None,
        "last_seq": seqs[-1] if seqs else None,
    }
    return render_page(request, "console/trace.html", "trace", context)


@require_GET
@capability_required("executions.read")
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
    return render_page(request, "console/trace_event.html", "event", context)


# --- Kill switch -------------------------------------------------------------------------------------


def _killswitch_context(**extra: Any) -> dict[str, Any]:
    return {"status": selectors.killswitch_status(), "scopes": ["global", "tenant", "action"], **extra}


@require_GET
@capability_required("killswitch.manage")
def killswitch(request: HttpRequest) -> HttpResponse:
    """Every switch and its state; engage (with a scope and a reason) or release."""
    return render_page(request, "console/killswitch.html", "switches", _killswitch_context())


@require_POST
@capability_required("killswitch.manage")
def killswitch_change(request: HttpRequest) -> HttpResponse:
    """Engage or release one switch through `runtime.services.killswitch_set` (ledgered, reasoned)."""
    form = KillSwitchForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, _invalid(form))
    data = form.cleaned_data
    target = "" if data["scope"] == "global" else data["target"]
    try:
        switch = runtime.killswitch_set(
            scope=data["scope"],
            target=target,
            engaged=data["engaged"],
            reason=data["reason"],
            actor=request.console_principal.ref,
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    if not wants_fragment(request):
        return redirect("console:killswitch")
    state = "engaged" if switch.engaged else "released"
    message = f"Kill switch {switch.scope}:{switch.target or '*'} {state}."
    return render_page(request, "console/killswitch.html", "switches", _killswitch_context(changed=message))
