"""Console pages of the incident flow: the board, an incident's detail and transitions, the signals view,
and silence management.

Same rules as every console page: every view is wrapped in
`capability_required`, serves its whole page or the fragment an htmx request swaps (`render_page`), and
answers a refusal with its reason code (`refusal_response`: nothing is written, the code is the API's).
Every write is one call of an `incidents.services` function, which locks, checks, transitions and ledgers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
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
from incidents import selectors, services
from incidents.forms import (
    AssignForm,
    ExpireForm,
    MitigateForm,
    NoteForm,
    RaiseSeverityForm,
    SignalFilterForm,
    SilenceForm,
    TransitionForm,
)
from incidents.models import SEVERITY_RANK, Incident, Severity, Silence

READ = "incidents.read"
MANAGE = "incidents.manage"
SILENCES = "silences.manage"
BOARD_POLL_SECONDS = 5
DETAIL_POLL_SECONDS = 10


@dataclass(frozen=True)
class Transition:
    """A transition button: its label, whether the service requires a reason, and its look."""

    verb: str
    label: str
    reason_required: bool
    style: str = "btn"


# The services' rules (incidents/services/lifecycle.py): mitigate, resolve and reopen need a reason.
TRANSITIONS: dict[str, Transition] = {
    "acknowledge": Transition("acknowledge", "Acknowledge", False, "btn btn-primary"),
    "mitigate": Transition("mitigate", "Start mitigating", True),
    "resolve": Transition("resolve", "Resolve", True, "btn btn-primary"),
    "close": Transition("close", "Close", False),
    "reopen": Transition("reopen", "Reopen", True, "btn btn-danger"),
}
SERVICES = {
    "acknowledge": services.incident_acknowledge,
    "mitigate": services.incident_mitigate,
    "resolve": services.incident_resolve,
    "close": services.incident_close,
    "reopen": services.incident_reopen,
}


# --- Board ----------------------------------------------------------------------------------------------


@require_GET
@capability_required(READ)
def board(request: HttpRequest) -> HttpResponse:
    """Incidents by state; the `board` fragment is what the page polls."""
    context = {
        "columns": selectors.board_columns(tenant=request.console_principal.tenant),
        "poll_seconds": BOARD_POLL_SECONDS,
    }
    return render_page(request, "incidents/board.html", "board", context)


# --- Incident detail and transitions -------------------------------------------------------------------


def _incident(request: HttpRequest, incident_id: str) -> Incident:
    tenant = request.console_principal.tenant
    found = selectors.incident_queryset(tenant=tenant).filter(pk=incident_id).first()
    if found is None:
        raise ControlPlaneError("INCIDENT_NOT_FOUND", f"no incident {incident_id!r}")
    return found


def _detail_context(request: HttpRequest, incident_id: str, **extra: Any) -> dict[str, Any]:
    detail = selectors.incident_detail(tenant=request.console_principal.tenant, incident_id=incident_id)
    if detail is None:
        raise ControlPlaneError("INCIDENT_NOT_FOUND", f"no incident {incident_id!r}")
    held = request.console_capabilities
    incident = detail["incident"]
    can_manage = MANAGE in held
    context = {
        **detail,
        "transitions": [TRANSITIONS[verb] for verb in detail["allowed"]],
        "can_manage": can_manage,
        "poll_seconds": DETAIL_POLL_SECONDS,
        "can_submit_intents": "intents.submit" in held,
        "can_read_ledger": "ledger.read" in held,
        "can_read_executions": "executions.read" in held,
        "higher_severities": [
            (value, label)
            for value, label in Severity.choices
            if SEVERITY_RANK[value] > SEVERITY_RANK[incident.severity]
        ],
        **extra,
    }
    if can_manage and "mitigate" in detail["allowed"]:
        context["intents"] = selectors.remediation_intents(tenant=request.console_principal.tenant)
    if can_manage and incident.status != "closed":
        context["assignees"] = selectors.incident_assignees(
            tenant=request.console_principal.tenant, now=timezone.now()
        )
    return context


@require_GET
@capability_required(READ)
def incident_detail(request: HttpRequest, incident_id: str) -> HttpResponse:
    """Timeline, evidence, confidence breakdown, decision reasons, and the transitions allowed now."""
    try:
        context = _detail_context(request, incident_id)
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    return render_page(request, "incidents/detail.html", "incident", context)


def _after_change(request: HttpRequest, incident_id: str, message: str) -> HttpResponse:
    """htmx: the refreshed incident with a notice; without htmx: back to the page (post/redirect/get)."""
    if not wants_fragment(request):
        return redirect("incidents:detail", incident_id=incident_id)
    context = _detail_context(request, incident_id, changed=message)
    return render_page(request, "incidents/detail.html", "incident", context)


@require_POST
@capability_required(MANAGE)
def incident_transition(request: HttpRequest, incident_id: str, verb: str) -> HttpResponse:
    """Apply one transition through its service; a refusal (illegal, no reason, ...) writes nothing."""
    if verb not in SERVICES:
        return refusal_response(request, ControlPlaneError("NOT_FOUND", f"no transition {verb!r}"))
    form = (MitigateForm if verb == "mitigate" else TransitionForm)(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    try:
        incident = _incident(request, incident_id)
        arguments: dict[str, Any] = {
            "incident": incident,
            "actor": request.console_principal,
            "reason": form.cleaned_data["reason"],
        }
        if verb == "mitigate":
            arguments["remediation"], arguments["intent_id"] = form.remediation()
        changed = SERVICES[verb](**arguments)
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    return _after_change(request, incident_id, f"Incident {changed.status}.")


@require_POST
@capability_required(MANAGE)
def incident_raise_severity(request: HttpRequest, incident_id: str) -> HttpResponse:
    """Raise the severity above what the evidence says: a person, with a reason; never down."""
    form = RaiseSeverityForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    try:
        changed = services.incident_raise_severity(
            incident=_incident(request, incident_id),
            actor=request.console_principal,
            severity=form.cleaned_data["severity"],
            reason=form.cleaned_data["reason"],
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    return _after_change(request, incident_id, f"Severity raised to {changed.severity}.")


@require_POST
@capability_required(MANAGE)
def incident_assign(request: HttpRequest, incident_id: str) -> HttpResponse:
    """Give the incident to a person of the tenant (or to me, or to nobody) through `incident_assign`."""
    form = AssignForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    try:
        incident = _incident(request, incident_id)
        if form.cleaned_data["me"]:
            assignee = request.console_principal
        elif form.cleaned_data["assignee"]:
            assignee = selectors.incident_assignee_get(
                tenant=incident.tenant, name=form.cleaned_data["assignee"]
            )
        else:
            assignee = None
        changed = services.incident_assign(
            incident=incident, actor=request.console_principal, assignee=assignee
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    who = changed.assignee.ref if changed.assignee else "nobody"
    return _after_change(request, incident_id, f"Incident assigned to {who}.")


@require_POST
@capability_required(MANAGE)
def incident_note(request: HttpRequest, incident_id: str) -> HttpResponse:
    """Add a note to the incident's timeline through `incident_note_add`."""
    form = NoteForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    try:
        note = services.incident_note_add(
            incident=_incident(request, incident_id),
            actor=request.console_principal,
            text=form.cleaned_data["text"],
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    return _after_change(request, incident_id, f"Note added (ledger seq {note.seq}).")


# --- Signals --------------------------------------------------------------------------------------------


@require_GET
@capability_required(READ)
def signals(request: HttpRequest) -> HttpResponse:
    """Recent signals, filtered: what was suppressed and by which silence, how each was normalised and
    deduplicated, and the evidence that counted it."""
    form = SignalFilterForm(request.GET)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    tenant = request.console_principal.tenant
    page, rows = selectors.signal_page(
        tenant=tenant, filters=form.filters(), page=form.cleaned_data["page"] or 1
    )
    base = reverse("incidents:signals")
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "sources": selectors.signal_sources(tenant=tenant),
        # read only when the full page renders it (the template calls it), not for the results fragment
        "attribution": lambda: selectors.signal_attribution_counts(tenant=tenant),
        "prev_href": f"{base}?{form.filter_query(page=page.previous_page_number())}"
        if page.has_previous()
        else "",
        "next_href": f"{base}?{form.filter_query(page=page.next_page_number())}" if page.has_next() else "",
    }
    return render_page(request, "incidents/signals.html", "results", context)


# --- Silences -------------------------------------------------------------------------------------------


def _silences_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    held = request.console_capabilities
    return {
        "groups": selectors.silence_groups(tenant=request.console_principal.tenant, now=timezone.now()),
        "labels": selectors.SILENCE_GROUPS,
        "form": extra.pop("form", None) or SilenceForm(),
        "can_manage": SILENCES in held,
        "can_read_approvals": "approvals.read" in held,
        "max_duration": _duration(settings.CONTROLPLANE_SILENCE_MAX_SECONDS),
        **extra,
    }


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


@require_GET
@capability_required(READ)
def silences(request: HttpRequest) -> HttpResponse:
    """Pending approval, active, scheduled and recently ended silences; create and expire."""
    return render_page(request, "incidents/silences.html", "silences", _silences_context(request))


def _after_silence(request: HttpRequest, message: str) -> HttpResponse:
    if not wants_fragment(request):
        return redirect("incidents:silences")
    return render_page(
        request, "incidents/silences.html", "silences", _silences_context(request, changed=message)
    )


@require_POST
@capability_required(SILENCES)
def silence_create(request: HttpRequest) -> HttpResponse:
    """Create a silence through `silence_create`: active now, or pending approval (high/critical)."""
    form = SilenceForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    try:
        silence = services.silence_create(
            actor=request.console_principal, **form.service_arguments(now=timezone.now())
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    if silence.status == "pending_approval":
        message = (
            f"Silence {silence.pk[:12]} could hide {silence.criticality} signals: it waits for approval "
            f"(request {silence.approval_id[:12]})."
        )
    else:
        message = f"Silence {silence.pk[:12]} created ({services.silence_state(silence)})."
    return _after_silence(request, message)


@require_POST
@capability_required(SILENCES)
def silence_expire(request: HttpRequest, silence_id: str) -> HttpResponse:
    """End an active silence now (`silence_expire`); anything else is SILENCE_NOT_ACTIVE."""
    form = ExpireForm(request.POST)
    if not form.is_valid():
        return refusal_response(request, form_refusal(form))
    silence = Silence.objects.filter(tenant=request.console_principal.tenant, pk=silence_id).first()
    if silence is None:
        return refusal_response(request, ControlPlaneError("NOT_FOUND", f"no silence {silence_id!r}"))
    try:
        services.silence_expire(
            silence=silence, actor=request.console_principal, reason=form.cleaned_data["reason"]
        )
    except ControlPlaneError as refusal:
        return refusal_response(request, refusal)
    return _after_silence(request, f"Silence {silence.pk[:12]} expired.")


# --- Dashboard panel ------------------------------------------------------------------------------------


def panel_context(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's incidents panel: open incidents by severity and state; one query."""
    return {"open": selectors.open_incident_counts(tenant=request.console_principal.tenant)}


def nav_count(request: HttpRequest) -> int:
    """The navigation badge: the tenant's incidents still open (open, acknowledged, mitigating); one query."""
    return selectors.open_incident_total(tenant=request.console_principal.tenant)
