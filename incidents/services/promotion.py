"""From a signal to evidence, confidence, a promotion decision and an incident.

Runs inside the ingest transaction, after the signal's ledger append has taken the ledger lock, so the
signals it counts are exactly those recorded before it (seq order) and two deliveries never race for
the same incident. Each step appends its event: `controlplane.evidence.assembled`,
`controlplane.confidence.assessed`, `controlplane.promotion.decided`, then `controlplane.incident.opened`
or `controlplane.incident.evidence.attached`. Times are the signals' own times, never the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents import detection
from incidents.models import (
    OPEN_STATUSES,
    ConfidenceAssessment,
    DetectionRuleVersion,
    EvidenceBundle,
    Incident,
    PromotionDecision,
    Signal,
    severity_max,
)
from incidents.services.common import append, format_time
from incidents.services.rules import current_rule_versions


@dataclass(frozen=True)
class Outcome:
    evidence: EvidenceBundle
    assessment: ConfidenceAssessment
    decision: PromotionDecision
    incident: Incident | None
    opened: bool


def facts_of(signal: Signal) -> detection.SignalFacts:
    return detection.SignalFacts(
        id=signal.id,
        seq=signal.seq,
        source=signal.source,
        service=signal.service,
        name=signal.name,
        severity=signal.severity,
        labels=signal.labels,
        status=signal.status,
        observed_at=signal.observed_at,
        suppressed=signal.suppressed_by_id is not None,
    )


def _candidates(rv: DetectionRuleVersion, trigger: Signal) -> list[detection.SignalFacts]:
    start, end = detection.window_of(rv.content(), facts_of(trigger))
    rows = Signal.objects.filter(
        tenant_id=trigger.tenant_id,
        service=trigger.service,
        status="firing",
        suppressed_by__isnull=True,
        observed_at__gte=start,
        observed_at__lte=end,
        seq__lte=trigger.seq,
    )
    if rv.match_name:
        rows = rows.filter(name=rv.match_name)
    return [facts_of(s) for s in rows]


def signal_evaluate(*, signal: Signal, causation_id: str = "") -> list[Outcome]:
    """Evaluate every current rule version of the tenant against a new firing signal (`causation_id`:
    the id of its `controlplane.signal.received` event)."""
    outcomes = []
    trigger = facts_of(signal)
    for rv in current_rule_versions(tenant=signal.tenant_id):
        content = rv.content()
        if not detection.matches(content, trigger):
            continue
        chosen = detection.select(content, trigger, _candidates(rv, signal))
        if chosen is None:
            continue
        outcome = _evidence_and_decision(rv=rv, trigger=signal, chosen=chosen, causation_id=causation_id)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _evidence_and_decision(
    *, rv: DetectionRuleVersion, trigger: Signal, chosen: list[detection.SignalFacts], causation_id: str
) -> Outcome | None:
    content = rv.content()
    start, end = detection.window_of(content, facts_of(trigger))
    ids = sorted(s.id for s in chosen)
    eid = detection.evidence_id(signal_ids=ids, rule_version=rv.id, start=start, end=end)
    if EvidenceBundle.objects.filter(pk=eid).exists():
        return None
    tenant = trigger.tenant.slug
    rule_name = rv.rule.name
    common = {"tenant": tenant, "actor": "system", "at": end}
    event = append(
        "controlplane.evidence.assembled",
        subject=f"evidence/{eid}",
        data={
            "evidence": eid,
            "rule": rule_name,
            "rule_version": rv.id,
            "rule_version_number": rv.version,
            "service": trigger.service,
            "window": {"start": format_time(start), "end": format_time(end)},
            "signals": ids,
            "trigger": trigger.id,
            "severity": detection.evidence_severity(content),
        },
        codes=["THRESHOLD_MET"],
        causation_id=causation_id,
        **common,
    )
    evidence = EvidenceBundle.objects.create(
        id=eid,
        tenant_id=trigger.tenant_id,
        rule_version=rv,
        service=trigger.service,
        window_start=start,
        window_end=end,
        signal_ids=ids,
        trigger_signal=trigger,
        severity=detection.evidence_severity(content),
        seq=event.seq,
    )
    assessed = detection.assess(content, chosen)
    append(
        "controlplane.confidence.assessed",
        subject=f"evidence/{eid}",
        data={
            "evidence": eid,
            "model_version": assessed.model_version,
            "factors": assessed.factors_data(),
            "score_bp": assessed.score_bp,
        },
        **common,
    )
    assessment = ConfidenceAssessment.objects.create(
        evidence=evidence,
        model_version=assessed.model_version,
        factors=assessed.factors_data(),
        score_bp=assessed.score_bp,
    )
    verdict = detection.promote(assessed.score_bp)
    append(
        "controlplane.promotion.decided",
        subject=f"evidence/{eid}",
        data={
            "evidence": eid,
            "decision": verdict.decision,
            "score_bp": verdict.score_bp,
            "threshold_bp": verdict.threshold_bp,
            "model_version": assessed.model_version,
        },
        codes=list(verdict.reason_codes),
        **common,
    )
    decision = PromotionDecision.objects.create(
        evidence=evidence,
        decision=verdict.decision,
        score_bp=verdict.score_bp,
        threshold_bp=verdict.threshold_bp,
        reason_codes=list(verdict.reason_codes),
        decided_at=end,
    )
    incident, opened = None, False
    if verdict.decision == "PROMOTE":
        incident, opened = _open_or_attach(evidence=evidence, rv=rv, at=end, causation_id=event.id)
    return Outcome(evidence, assessment, decision, incident, opened)


def _open_or_attach(
    *, evidence: EvidenceBundle, rv: DetectionRuleVersion, at, causation_id: str
) -> tuple[Incident, bool]:
    """Attach to the open incident of (service, rule), or open one. One open incident per pair: the
    ledger lock serialises deliveries, and a partial unique constraint holds it in the database."""
    tenant = evidence.tenant
    open_incident = (
        Incident.objects.select_for_update()
        .filter(tenant=tenant, service=evidence.service, rule_id=rv.rule_id, status__in=OPEN_STATUSES)
        .first()
    )
    if open_incident is None:
        try:
            with transaction.atomic():
                return _open(evidence=evidence, rv=rv, at=at, causation_id=causation_id), True
        except IntegrityError:
            open_incident = (
                Incident.objects.select_for_update()
                .filter(tenant=tenant, service=evidence.service, rule_id=rv.rule_id, status__in=OPEN_STATUSES)
                .get()
            )
    return _attach(incident=open_incident, evidence=evidence, at=at, causation_id=causation_id), False


def _open(*, evidence: EvidenceBundle, rv: DetectionRuleVersion, at, causation_id: str) -> Incident:
    iid = detection.incident_id(service=evidence.service, evidence=evidence.id)
    incident = Incident.objects.create(
        id=iid,
        tenant=evidence.tenant,
        service=evidence.service,
        rule_id=rv.rule_id,
        title=f"{rv.rule.name}: {evidence.service}",
        severity=evidence.severity,
        opened_at=at,
        updated_at=timezone.now(),
    )
    evidence.incident = incident
    evidence.save(update_fields=["incident"])
    append(
        "controlplane.incident.opened",
        subject=f"incident/{iid}",
        data={
            "incident": iid,
            "service": evidence.service,
            "rule": rv.rule.name,
            "rule_version": rv.id,
            "evidence": evidence.id,
            "severity": incident.severity,
            "status": incident.status,
            "title": incident.title,
            "opened_at": format_time(at),
        },
        codes=["THRESHOLD_MET", "CONFIDENCE_MET"],
        tenant=evidence.tenant.slug,
        actor="system",
        at=at,
        causation_id=causation_id,
        correlation_id=iid,
    )
    return incident


def _attach(*, incident: Incident, evidence: EvidenceBundle, at, causation_id: str) -> Incident:
    evidence.incident = incident
    evidence.save(update_fields=["incident"])
    severity = severity_max(incident.severity, evidence.severity)
    fields = ["updated_at"]
    if severity != incident.severity:
        incident.severity = severity
        fields.append("severity")
    incident.updated_at = timezone.now()
    incident.save(update_fields=fields)
    append(
        "controlplane.incident.evidence.attached",
        subject=f"incident/{incident.id}",
        data={"incident": incident.id, "evidence": evidence.id, "severity": incident.severity},
        codes=["EVIDENCE_ATTACHED_TO_OPEN_INCIDENT"],
        tenant=evidence.tenant.slug,
        actor="system",
        at=at,
        causation_id=causation_id,
        correlation_id=incident.id,
    )
    return incident
