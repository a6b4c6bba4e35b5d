"""Console pages of the approvals app: the queue, one decision, a bulk decision, and the dashboard panel.

Every view is wrapped in `capability_required`, serves its whole page or the fragment an htmx request swaps
(`render_page`), and answers a refusal with its reason code (`refusal_response`). Every write is one call
of an `approvals.services` function, the same the API calls.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from approvals import selectors, services
from approvals.forms import ApprovalQueueForm, BulkDecisionForm, DecisionForm
from approvals.services import BULK_LIMIT
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.pages import (
    capability_required,
    form_refusal,
    refusal_response,
    render_page,
    wants_fragment,
)

READ = "approvals.read"
DECIDE = "approvals.decide"
QUEUE_POLL_SECONDS = 5
APPROVAL_ID = re.compile(r"^[0-9a-f]{64}$")


def _queue_context(request: HttpRequest, form: ApprovalQueueForm) -> dict[str, Any]:
    queue = selectors.approval_queue(
        principal=request.console_principal,
        filters=form.filters(),
        page=form.cleaned_data.get("page") or 1,
        now=timezone.now(),
    )
    base = reverse("approvals:queue")
    page = queue.page
    return {
        "form": form,
        "queue": queue,
        "can_decide": DECIDE in request.console_capabilities,
        "poll_seconds": QUEUE_POLL_SECONDS,
        "poll_href": f"{base}?{form.filter_query()}",
        "prev_href": f"{base}?{form.filter_query(page=page.previous_page_number())}"
        if page.has_previous()
        else "",
        "next_href": f"{base}?{form.filter_query(page=page.next_page_number())}" if page.has_next() else "",
    }


@require_GET
@capability_required(READ)
def queue(request: HttpRequest) -> HttpResponse:
    """Pending approvals with what exactly is approved, why, and (for a plan step) the plan around it.

    The `queue` fragment is what the page polls every few seconds and what a decision answers with.
    """
    form = ApprovalQueueForm(request.GET, principal=request.console_principal)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    context = _queue_context(request, form)
    decided = [pk for pk in request.GET.getlist("decided")[:BULK_LIMIT] if APPROVAL_ID.match(pk)]
    if decided:  # back from a decision without htmx: say what was decided, and link to it
        context["decided_rows"] = selectors.decided_rows(
            principal=request.console_principal, approval_ids=decided
        )
        context["decided"] = "Decided: " + ", ".join(
            f"request {row.approval.pk[:12]} {row.approval.status}" for row in context["decided_rows"]
        )
    return render_page(request, "approvals/queue.html", "queue", context)


def _after_decision(request: HttpRequest, message: str, decided: list[str]) -> HttpResponse:
    """htmx: the refreshed queue, with the filters of the page the operator is on, and a notice linking to
    what was decided (a step's execution and trace, the incident it remediates). Any refusal still shown
    (in the notice area, or beside a card) is cleared: the queue is swapped whole, and the notice area
    out of band.

    Without htmx: back to the queue (post/redirect/get), which shows the same notice from `?decided=`.
    """
    if not wants_fragment(request):
        return redirect(f"{reverse('approvals:queue')}?{urlencode([('decided', pk) for pk in decided])}")
    current = urlsplit(request.htmx.current_url or "")
    form = ApprovalQueueForm(QueryDict(current.query), principal=request.console_principal)
    if not form.is_valid():  # the address bar held something odd: show the unfiltered queue
        form = ApprovalQueueForm(QueryDict(), principal=request.console_principal)
        form.is_valid()
    context = {
        **_queue_context(request, form),
        "decided": message,
        "decided_rows": selectors.decided_rows(principal=request.console_principal, approval_ids=decided),
        "clear_notice": True,
    }
    return render_page(request, "approvals/queue.html", "queue", context)


def _card(approval_id: str) -> str:
    """The notice area of one card: a refusal of a decision is shown beside the request it concerns."""
    return f"#req-notice-{approval_id}" if APPROVAL_ID.match(approval_id) else "#notice"


@require_POST
@capability_required(DECIDE)
def decide(request: HttpRequest, approval_id: str) -> HttpResponse:
    """Approve or reject one approval, bound to the content hash the operator saw."""
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form), target=_card(approval_id))
    approval = selectors.queue_approval_get(principal=request.console_principal, approval_id=approval_id)
    if approval is None:
        return refusal_response(
            request,
            ControlPlaneError("APPROVAL_NOT_FOUND", f"no approval request {approval_id!r}"),
            target=_card(approval_id),
        )
    data = form.cleaned_data
    try:
        decided = services.approval_decide(
            approval=approval,
            actor=request.console_principal,
            decision=data["decision"],
            reason=data["reason"],
            content_hash=data["content_hash"],
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal, target=_card(approval.pk))
    verb = "approved" if data["decision"] == "approve" else "rejected"
    outcome = decided.status if decided.status != "pending" else f"{verb}; waiting for more approvers"
    return _after_decision(request, f"Request {decided.pk[:12]}: {outcome}.", [decided.pk])


@require_POST
@capability_required(DECIDE)
def bulk_decide(request: HttpRequest) -> HttpResponse:
    """One decision and one reason for every selected approval: all of them, or none (like the API)."""
    form = BulkDecisionForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    data = form.cleaned_data
    items = data["request"]
    try:
        services.approvals_bulk_decide(
            items=items, actor=request.console_principal, decision=data["decision"], reason=data["reason"]
        )
    except ControlPlaneError as refusal:
        at_fault = refusal.extra.get("request")
        if at_fault is None:  # no decision was tried (an unknown id): the refusal says it all
            return refusal_response(request, refusal)
        return refusal_response(
            request,
            ControlPlaneError(
                refusal.code,
                f"request {at_fault[:12]}: {refusal.detail} — nothing was decided",
                extra={"request": at_fault},
            ),
            target=_card(at_fault),
        )
    verb = "Approved" if data["decision"] == "approve" else "Rejected"
    return _after_decision(
        request,
        f"{verb} {len(items)} request{'s' if len(items) != 1 else ''}.",
        [approval_id for approval_id, _ in items],
    )


# --- Dashboard panel ---------------------------------------------------------------------------------


def panel_context(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's "approvals waiting" panel: pending approvals by risk tier, oldest first; one query."""
    return {"pending": selectors.pending_summary(principal=request.console_principal)}


def nav_count(request: HttpRequest) -> int:
    """The navigation badge: how many approvals of the viewer's tenant are pending; one query."""
    return selectors.pending_count(principal=request.console_principal)
