"""From a signal to evidence, confidence, a promotion decision and an incident.

Runs inside the ingest transaction, under the detection lock of the signal's (tenant, service) that
`signal_ingest` took first: the signals it counts are exactly those recorded before it (seq order), and
two deliveries never race for the same incident. Each step appends its event:
`controlplane.evidence.assembled`, `controlplane.confidence.assessed`, `controlplane.promotion.decided`,
then `controlplane.incident.opened` or `controlplane.incident.evidence.attached`; inside ingest these are
deferred with the signal's own event and go on the chain together when the delivery ends (the chain is
the serial point, so the less done while its lock is held the better). Times are the signals' own
times, never the clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from django.utils import timezone

from controlplane.ledger.batch import DeferredEvent
from controlplane.ledger.chain import PreparedEvent
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append_prepared, ledger_prepare
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
from incidents.services.common import format_time, is_provisional, seq_of
from incidents.services.rules import current_rule_versions

# The seq detection gives a trigger whose event is still deferred: it is the newest signal of its service
# (under the detection lock everything visible was recorded before it).
_NEWEST = 2**63 - 1


@dataclass(frozen=True)
class Outcome:
    evidence: EvidenceBundle
    assessment: ConfidenceAssessment
    decision: PromotionDecision
    incident: Incident | None
    opened: bool
    evidence_event: LedgerEvent | DeferredEvent | None = None  # controlplane.evidence.assembled


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
    )
    if not is_provisional(trigger.seq):  # a stored signal evaluated again: only what came before it
        rows = rows.filter(seq__gt=0, seq__lte=trigger.seq)
    if rv.match_name:
        rows = rows.filter(name=rv.match_name)
    return [facts_of(s) for s in rows]


def signal_evaluate(
    *, signal: Signal, causation_id: str = "", rules: list[DetectionRuleVersion] | None = None
) -> list[Outcome]:
    """Evaluate every current rule version of the tenant (or `rules`, read by the caller) against a new
    firing signal; `causation_id` is its signal.received event's id.

    Inside ingest the signal's event is still deferred (its seq provisional): it is the newest signal of
    its service, and the candidates are the signals visible to this transaction, which the detection
    lock makes exactly those recorded before it. A signal already on the chain counts those up to its seq.
    """
    outcomes = []
    trigger = facts_of(signal)
    if is_provisional(signal.seq):
        trigger = replace(trigger, seq=_NEWEST)
    for rv in current_rule_versions(tenant=signal.tenant_id) if rules is None else rules:
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


def _prepare(
    type_: str, *, subject: str, data: dict, tenant: str, at, codes=(), causation_id="", correlation_id=""
):
    return ledger_prepare(
        type=type_,
        subject=subject,
        data=data,
        tenant=tenant,
        actor="system",
        time=at,
        reason_codes=list(codes),
        causation_id=causation_id,
        correlation_id=correlation_id,
        event_id=uuid.uuid4().hex,
    )


def _evidence_and_decision(
    *, rv: DetectionRuleVersion, trigger: Signal, chosen: list[detection.SignalFacts], causation_id: str
) -> Outcome | None:
    """Assemble, assess and decide; open or attach. All of its events go on the chain in one append."""
    content = rv.content()
    start, end = detection.window_of(content, facts_of(trigger))
    ids = sorted(s.id for s in chosen)
    eid = detection.evidence_id(signal_ids=ids, rule_version=rv.id, start=start, end=end)
    if EvidenceBundle.objects.filter(pk=eid).exists():
        return None
    tenant = trigger.tenant.slug
    severity = detection.evidence_severity(content)
    assessed = detection.assess(content, chosen)
    verdict = detection.promote(assessed.score_bp)
    events = _decision_events(
        rv=rv,
        trigger=trigger,
        eid=eid,
        ids=ids,
        window=(start, end),
        severity=severity,
        assessed=assessed,
        verdict=verdict,
        tenant=tenant,
        causation_id=causation_id,
    )
    incident, opened = None, False
    if verdict.decision == "PROMOTE":
        incident, opened, event = _open_or_attach(
            rv=rv,
            trigger=trigger,
            eid=eid,
            severity=severity,
            at=end,
            tenant=tenant,
            evidence_event=events[0].fields["id"],
        )
        events.append(event)
    appended = ledger_append_prepared(events)
    if opened:
        incident.save(force_insert=True)
    evidence, assessment, decision = _evidence_rows(
        rv=rv,
        trigger=trigger,
        eid=eid,
        ids=ids,
        window=(start, end),
        severity=severity,
        incident=incident,
        assessed=assessed,
        verdict=verdict,
        seq=seq_of(appended[0]),  # provisional while deferred; signal_ingest settles it
    )
    return Outcome(evidence, assessment, decision, incident, opened, appended[0])


def _decision_events(
    *,
    rv: DetectionRuleVersion,
    trigger: Signal,
    eid: str,
    ids: list[str],
    window: tuple[datetime, datetime],
    severity: str,
    assessed: detection.Assessment,
    verdict: detection.Promotion,
    tenant: str,
    causation_id: str,
) -> list[PreparedEvent]:
    """evidence.assembled, then confidence.assessed and promotion.decided (caused by the first)."""
    start, end = window
    subject = f"evidence/{eid}"
    assembled = _prepare(
        "controlplane.evidence.assembled",
        subject=subject,
        data={
            "evidence": eid,
            "rule": rv.rule.name,
            "rule_version": rv.id,
            "rule_version_number": rv.version,
            "service": trigger.service,
            "window": {"start": format_time(start), "end": format_time(end)},
            "signals": ids,
            "trigger": trigger.id,
            "severity": severity,
        },
        tenant=tenant,
        at=end,
        codes=["THRESHOLD_MET"],
        causation_id=causation_id,
    )
    evidence_event = assembled.fields["id"]
    return [
        assembled,
        _prepare(
            "controlplane.confidence.assessed",
            subject=subject,
            data={
                "evidence": eid,
                "model_version": assessed.model_version,
                "factors": assessed.factors_data(),
                "score_bp": assessed.score_bp,
            },
            tenant=tenant,
            at=end,
            causation_id=evidence_event,
        ),
        _prepare(
            "controlplane.promotion.decided",
            subject=subject,
            data={
                "evidence": eid,
                "decision": verdict.decision,
                "score_bp": verdict.score_bp,
                "threshold_bp": verdict.threshold_bp,
                "model_version": assessed.model_version,
            },
            tenant=tenant,
            at=end,
            codes=verdict.reason_codes,
            causation_id=evidence_event,
        ),
    ]


def _open_or_attach(
    *,
    rv: DetectionRuleVersion,
    trigger: Signal,
    eid: str,
    severity: str,
    at: datetime,
    tenant: str,
    evidence_event: str,
) -> tuple[Incident, bool, PreparedEvent]:
    """The incident promoted evidence belongs to: the open one of its (service, rule), its severity raised
    to the evidence's (saved now), or a new one (saved by the caller after the append); with its event
    and whether it was opened."""
    # One open incident per (service, rule): the detection lock of the service serialises the
    # deliveries that could open it, so this read is current; a partial unique constraint backs it.
    incident = (
        Incident.objects.select_for_update()
        .filter(
            tenant_id=trigger.tenant_id,
            service=trigger.service,
            rule_id=rv.rule_id,
            status__in=OPEN_STATUSES,
        )
        .first()
    )
    if incident is None:
        incident = Incident(
            id=detection.incident_id(service=trigger.service, evidence=eid),
            tenant_id=trigger.tenant_id,
            service=trigger.service,
            rule_id=rv.rule_id,
            title=f"{rv.rule.name}: {trigger.service}",
            severity=severity,
            opened_at=at,
            updated_at=timezone.now(),
        )
        opened = _prepare(
            "controlplane.incident.opened",
            subject=f"incident/{incident.id}",
            data={
                "incident": incident.id,
                "service": trigger.service,
                "rule": rv.rule.name,
                "rule_version": rv.id,
                "evidence": eid,
                "severity": severity,
                "status": incident.status,
                "title": incident.title,
                "opened_at": format_time(at),
            },
            tenant=tenant,
            at=at,
            codes=["THRESHOLD_MET", "CONFIDENCE_MET"],
            causation_id=evidence_event,
            correlation_id=incident.id,
        )
        return incident, True, opened
    raised = severity_max(incident.severity, severity)
    attached = _prepare(
        "controlplane.incident.evidence.attached",
        subject=f"incident/{incident.id}",
        data={"incident": incident.id, "evidence": eid, "severity": raised},
        tenant=tenant,
        at=at,
        codes=["EVIDENCE_ATTACHED_TO_OPEN_INCIDENT"],
        causation_id=evidence_event,
        correlation_id=incident.id,
    )
    if raised != incident.severity:
        incident.severity = raised
        incident.updated_at = timezone.now()
        incident.save(update_fields=["severity", "updated_at"])
    return incident, False, attached


def _evidence_rows(
    *,
    rv: DetectionRuleVersion,
    trigger: Signal,
    eid: str,
    ids: list[str],
    window: tuple[datetime, datetime],
    severity: str,
    incident: Incident | None,
    assessed: detection.Assessment,
    verdict: detection.Promotion,
    seq: int,
) -> tuple[EvidenceBundle, ConfidenceAssessment, PromotionDecision]:
    """The projection rows of one evidence bundle: the bundle, its assessment and its decision."""
    start, end = window
    evidence = EvidenceBundle.objects.create(
        id=eid,
        tenant_id=trigger.tenant_id,
        rule_version=rv,
        service=trigger.service,
        window_start=start,
        window_end=end,
        signal_ids=ids,
        trigger_signal=trigger,
        severity=severity,
        incident=incident,
        seq=seq,
    )
    assessment = ConfidenceAssessment.objects.create(
        evidence=evidence,
        model_version=assessed.model_version,
        factors=assessed.factors_data(),
        score_bp=assessed.score_bp,
    )
    decision = PromotionDecision.objects.create(
        evidence=evidence,
        decision=verdict.decision,
        score_bp=verdict.score_bp,
        threshold_bp=verdict.threshold_bp,
        reason_codes=list(verdict.reason_codes),
        decided_at=end,
    )
    return evidence, assessment, decision
