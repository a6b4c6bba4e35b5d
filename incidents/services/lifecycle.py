"""What people do to incidents: acknowledge, mitigate (with a remediation), resolve, close, reopen, and
raise the severity. Each one locks the row, checks the actor (a person of the incident's tenant) and the
reason, runs the django-fsm-2 transition, saves and appends its ledger event with the person's own time.
An illegal transition is refused with INCIDENT_TRANSITION_NOT_ALLOWED and writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from controlplane.runtime.models import Intent, IntentStatus
from incidents.models import SEVERITY_RANK, Incident, IncidentStatus
from incidents.services.common import format_time, require_human, require_reason

INTENT_CAPABILITY = "intents.submit"

# verb -> (transition method, timestamp field, ledger verb, reason required)
_TRANSITIONS: dict[str, tuple[str, str | None, str, bool]] = {
    "acknowledge": ("acknowledge", "acknowledged_at", "acknowledged", False),
    "mitigate": ("mitigate", "mitigating_at", "mitigating", True),
    "resolve": ("resolve", "resolved_at", "resolved", True),
    "close": ("close", "closed_at", "closed", False),
    "reopen": ("reopen", None, "reopened", True),
}


def allowed_transitions(incident: Incident) -> list[str]:
    """The verbs a person may apply now (the console shows these as buttons)."""
    return [verb for verb, (method, *_rest) in _TRANSITIONS.items() if can_proceed(getattr(incident, method))]


def _lock(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().select_related("tenant", "rule").get(pk=incident.pk)


def _transition(
    verb: str,
    *,
    incident: Incident,
    actor: Principal,
    reason: str | None,
    at: datetime | None,
    extra: dict[str, Any] | None = None,
    before_save: Any = None,
) -> Incident:
    method, stamp, event_verb, reason_required = _TRANSITIONS[verb]
    incident = _lock(incident)
    require_human(actor, tenant_id=incident.tenant_id, what="act on incidents")
    reason = require_reason(reason, f"{verb} of an incident") if reason_required else (reason or "").strip()
    if not can_proceed(getattr(incident, method)):
        raise ControlPlaneError(
            "INCIDENT_TRANSITION_NOT_ALLOWED",
            f"an incident that is {incident.status} cannot be {event_verb}",
            extra={"status": incident.status, "allowed": allowed_transitions(incident)},
        )
    at = at or timezone.now()
    before = incident.status
    data = dict(extra or {})
    if before_save is not None:
        data.update(before_save(incident, at) or {})
    getattr(incident, method)()
    fields = ["status", "updated_at"]
    if stamp:
        setattr(incident, stamp, at)
        fields.append(stamp)
    if verb == "reopen":
        incident.resolved_at = None
        fields.append("resolved_at")
    if verb == "mitigate":
        fields.append("remediation_intent")
    incident.updated_at = at
    incident.save(update_fields=fields)
    ledger_append(
        type=f"controlplane.incident.{event_verb}",
        subject=f"incident/{incident.id}",
        data={
            "incident": incident.id,
            "from": before,
            "to": incident.status,
            "reason": reason,
            "at": format_time(at),
            **data,
        },
        tenant=incident.tenant.slug,
        actor=actor.ref,
        time=at,
        correlation_id=incident.id,
    )
    return incident


@transaction.atomic
def incident_acknowledge(
    *, incident: Incident, actor: Principal, reason: str = "", at: datetime | None = None
) -> Incident:
    """OPEN -> ACKNOWLEDGED: someone is on it."""
    return _transition("acknowledge", incident=incident, actor=actor, reason=reason, at=at)


@transaction.atomic
def incident_mitigate(
    *,
    incident: Incident,
    actor: Principal,
    reason: str,
    remediation: dict[str, Any] | None = None,
    intent_id: str | None = None,
    at: datetime | None = None,
) -> Incident:
    """OPEN | ACKNOWLEDGED -> MITIGATING, linking the remediation: a plan draft submitted now to the runtime
    as an intent by this person (so it meets policy and approvals like any action), or an intent of the
    tenant submitted before. A draft that does not compile refuses the transition with its PLAN_* code
    and writes nothing (the rejected intent is rolled back with it)."""
    from controlplane.runtime.services import intent_submit

    if (remediation is None) == (intent_id is None):
        raise ControlPlaneError(
            "INCIDENT_REMEDIATION_REQUIRED", "mitigating links one remediation: a plan draft or an intent id"
        )

    def link(locked: Incident, at: datetime) -> dict[str, Any]:
        if remediation is not None:
            if not actor.has_capability(INTENT_CAPABILITY):
                raise ControlPlaneError("CAPABILITY_MISSING", f"{actor.ref} lacks {INTENT_CAPABILITY!r}")
            intent = intent_submit(
                principal=actor,
                draft=remediation,
                idempotency_key=f"incident:{locked.id}:mitigate:{format_time(at)}",
                at=at,
            )
            if intent.status == IntentStatus.REJECTED:
                rejection = intent.rejection or {}
                raise ControlPlaneError(
                    rejection.get("code", "PLAN_INVALID"),
                    rejection.get("detail"),
                    extra={k: v for k, v in rejection.items() if k in ("step", "path")},
                )
        else:
            intent = Intent.objects.filter(pk=intent_id, tenant_id=locked.tenant_id).first()
            if intent is None:
                raise ControlPlaneError("NOT_FOUND", f"no intent {intent_id!r} in your tenant")
        locked.remediation_intent = intent
        return {"intent": intent.id, "plan": intent.plan_id}

    return _transition("mitigate", incident=incident, actor=actor, reason=reason, at=at, before_save=link)


@transaction.atomic
def incident_resolve(
    *, incident: Incident, actor: Principal, reason: str, at: datetime | None = None
) -> Incident:
    """OPEN | ACKNOWLEDGED | MITIGATING -> RESOLVED, with the reason (what fixed it)."""
    return _transition("resolve", incident=incident, actor=actor, reason=reason, at=at)


@transaction.atomic
def incident_close(
    *, incident: Incident, actor: Principal, reason: str = "", at: datetime | None = None
) -> Incident:
    """RESOLVED -> CLOSED: nothing more to do (post-incident review done)."""
    return _transition("close", incident=incident, actor=actor, reason=reason, at=at)


@transaction.atomic
def incident_reopen(
    *, incident: Incident, actor: Principal, reason: str, at: datetime | None = None
) -> Incident:
    """RESOLVED -> OPEN: it came back. Refused when another incident of the same service and rule is
    open already (INCIDENT_TRANSITION_NOT_ALLOWED): there is one authority per problem."""
    locked = _lock(incident)
    other = (
        Incident.objects.filter(
            tenant_id=locked.tenant_id,
            service=locked.service,
            rule_id=locked.rule_id,
            status__in=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATING],
        )
        .exclude(pk=locked.pk)
        .first()
    )
    if other is not None and locked.status == IncidentStatus.RESOLVED:
        require_human(actor, tenant_id=locked.tenant_id, what="act on incidents")
        raise ControlPlaneError(
            "INCIDENT_TRANSITION_NOT_ALLOWED",
            f"incident {other.id} of the same service and rule is open; work there",
            extra={"status": locked.status, "open_incident": other.id},
        )
    return _transition("reopen", incident=locked, actor=actor, reason=reason, at=at)


@transaction.atomic
def incident_raise_severity(
    *, incident: Incident, actor: Principal, severity: str, reason: str, at: datetime | None = None
) -> Incident:
    """Raise the severity above what the evidence says. Only people raise it, with a reason; it never
    goes down (INCIDENT_SEVERITY_NOT_RAISED)."""
    incident = _lock(incident)
    require_human(actor, tenant_id=incident.tenant_id, what="act on incidents")
    reason = require_reason(reason, "raising the severity")
    if severity not in SEVERITY_RANK:
        raise ControlPlaneError("VALIDATION_FAILED", f"severity must be one of {', '.join(SEVERITY_RANK)}")
    if SEVERITY_RANK[severity] <= SEVERITY_RANK[incident.severity]:
        raise ControlPlaneError(
            "INCIDENT_SEVERITY_NOT_RAISED",
            f"the incident is {incident.severity} already; a person may only raise it",
            extra={"severity": incident.severity},
        )
    if incident.status == IncidentStatus.CLOSED:
        raise ControlPlaneError("INCIDENT_TRANSITION_NOT_ALLOWED", "a closed incident does not change")
    at = at or timezone.now()
    before = incident.severity
    incident.severity = severity
    incident.severity_raised_to = severity
    incident.updated_at = at
    incident.save(update_fields=["severity", "severity_raised_to", "updated_at"])
    ledger_append(
        type="controlplane.incident.severity.raised",
        subject=f"incident/{incident.id}",
        data={
            "incident": incident.id,
            "from": before,
            "to": severity,
            "reason": reason,
            "at": format_time(at),
        },
        tenant=incident.tenant.slug,
        actor=actor.ref,
        time=at,
        correlation_id=incident.id,
    )
    return incident
