"""Reads for the API, the console and the CLI: lists, the board, details, and the timeline."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from django.db.models import Count, Prefetch, QuerySet

from controlplane.identity.models import Tenant
from controlplane.ledger.models import LedgerEvent
from incidents.models import (
    DetectionRule,
    EvidenceBundle,
    Incident,
    IncidentStatus,
    Signal,
    Silence,
)


def incident_queryset(*, tenant: Tenant) -> QuerySet[Incident]:
    """A tenant's incidents with what lists show (rule name, evidence count)."""
    return (
        Incident.objects.filter(tenant=tenant)
        .select_related("rule", "tenant", "remediation_intent")
        .annotate(evidence_count=Count("evidence"))
    )


def incident_list(
    *,
    tenant: Tenant,
    status: str | None = None,
    service: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
) -> QuerySet[Incident]:
    incidents = incident_queryset(tenant=tenant)
    if status:
        incidents = incidents.filter(status=status)
    if service:
        incidents = incidents.filter(service=service)
    if severity:
        incidents = incidents.filter(severity=severity)
    if rule:
        incidents = incidents.filter(rule__name=rule)
    return incidents


def incident_board(*, tenant: Tenant, closed_limit: int = 20) -> OrderedDict[str, list[Incident]]:
    """Incidents by state, in lifecycle order (newest first within a column; only the latest closed)."""
    board: OrderedDict[str, list[Incident]] = OrderedDict((s.value, []) for s in IncidentStatus)
    for incident in incident_queryset(tenant=tenant).exclude(status=IncidentStatus.CLOSED):
        board[incident.status].append(incident)
    board[IncidentStatus.CLOSED] = list(
        incident_queryset(tenant=tenant).filter(status=IncidentStatus.CLOSED)[:closed_limit]
    )
    return board


def incident_get(*, tenant: Tenant, incident_id: str) -> Incident | None:
    """One incident with its evidence, each with its assessment and decision, newest evidence last."""
    evidence = EvidenceBundle.objects.select_related(
        "assessment", "decision", "rule_version__rule", "trigger_signal"
    ).order_by("seq")
    return (
        incident_queryset(tenant=tenant)
        .prefetch_related(Prefetch("evidence", queryset=evidence))
        .filter(pk=incident_id)
        .first()
    )


def incident_timeline(*, incident: Incident) -> list[LedgerEvent]:
    """Every ledger event of the incident, in chain order: its own events, the events of its evidence
    (assembled, assessed, decided) and the signals in that evidence."""
    bundles = list(EvidenceBundle.objects.filter(incident=incident).values_list("id", "signal_ids"))
    subjects = {f"incident/{incident.id}"}
    for evidence_id, signal_ids in bundles:
        subjects.add(f"evidence/{evidence_id}")
        subjects.update(f"signal/{sid}" for sid in signal_ids)
    return list(LedgerEvent.objects.filter(subject__in=subjects).order_by("seq"))


def timeline_entry(event: LedgerEvent) -> dict[str, Any]:
    """What the timeline shows of one event (no canonical bytes or signatures)."""
    return {
        "seq": event.seq,
        "id": event.id,
        "type": event.type,
        "subject": event.subject,
        "time": event.time,
        "actor": event.actor,
        "reason_codes": event.reason_codes,
        "data": event.data,
    }


def signal_list(
    *,
    tenant: Tenant,
    service: str | None = None,
    status: str | None = None,
    suppressed: bool | None = None,
    source: str | None = None,
) -> QuerySet[Signal]:
    """Newest first; `suppressed=True` lists what silences hid, each with its silence."""
    signals = Signal.objects.filter(tenant=tenant).select_related("suppressed_by").order_by("-seq")
    if service:
        signals = signals.filter(service=service)
    if status:
        signals = signals.filter(status=status)
    if source:
        signals = signals.filter(source=source)
    if suppressed is not None:
        signals = signals.filter(suppressed_by__isnull=not suppressed)
    return signals


def evidence_get(*, tenant: Tenant, evidence_id: str) -> EvidenceBundle | None:
    return (
        EvidenceBundle.objects.filter(tenant=tenant, pk=evidence_id)
        .select_related("assessment", "decision", "rule_version__rule", "incident")
        .first()
    )


def evidence_signals(evidence: EvidenceBundle) -> list[Signal]:
    return list(Signal.objects.filter(pk__in=evidence.signal_ids).order_by("seq"))


def rule_list(*, tenant: Tenant) -> QuerySet[DetectionRule]:
    return DetectionRule.objects.filter(tenant=tenant).prefetch_related("versions").order_by("name")


def silence_list(*, tenant: Tenant, status: str | None = None) -> QuerySet[Silence]:
    silences = (
        Silence.objects.filter(tenant=tenant)
        .select_related("created_by__tenant", "approval")
        .annotate(suppressed_count=Count("suppressed_signals"))
    )
    if status:
        silences = silences.filter(status=status)
    return silences
