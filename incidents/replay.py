"""Incident replay: rebuild incidents from the ledger alone and re-run every deterministic decision.

From the recorded events only (`controlplane.signal.received`, `.detection.rule.versioned`,
`.evidence.assembled`, `.confidence.assessed`, `.promotion.decided`, `.incident.*`), for each evidence
bundle it recomputes, with the *recorded* rule version and model version:

- which signals the rule selects (those recorded up to the trigger, in the window, matching the rule),
  the window, and the evidence id;
- the confidence factors and score, and the promotion decision with its reason codes;

and for each incident: its id (SHA-256(service + opening evidence id)), that the opening decision was
PROMOTE, and its state (status, severity, evidence, timestamps, remediation) by folding its events.
Each recomputed value is compared with what the ledger recorded and with the projection rows; every
disagreement is a `Difference`. A rule changed later cannot alter an old decision: decisions name the
version they used, and replay uses that version's recorded content.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q

from controlplane.kernel.replay import Replayer, ReplayReport
from controlplane.ledger.models import LedgerEvent
from incidents import detection
from incidents.models import EvidenceBundle, Incident, severity_max
from incidents.normalise import format_time
from incidents.services.rules import rule_version_id

_TYPES = (
    "controlplane.signal.received",
    "controlplane.detection.rule.versioned",
    "controlplane.evidence.assembled",
    "controlplane.confidence.assessed",
    "controlplane.promotion.decided",
)
_INCIDENT_PREFIX = "controlplane.incident."
_STAMPS = {
    "acknowledged": "acknowledged_at",
    "mitigating": "mitigating_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
}


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _facts(seq: int, data: dict[str, Any]) -> detection.SignalFacts:
    return detection.SignalFacts(
        id=data["signal"],
        seq=seq,
        source=data["source"],
        service=data["service"],
        name=data["name"],
        severity=data["severity"],
        labels=data["labels"],
        status=data["status"],
        observed_at=_time(data["observed_at"]),
        suppressed=data.get("suppressed_by") is not None,
    )


@dataclass
class _Evidence:
    seq: int
    tenant: str
    data: dict[str, Any]
    assessed: dict[str, Any] | None = None
    decided: LedgerEvent | None = None


@dataclass
class _IncidentState:
    """An incident as its events say it is."""

    id: str
    seq: int
    tenant: str
    data: dict[str, Any]
    status: str = "open"
    severity: str = "info"
    evidence: list[str] = field(default_factory=list)
    stamps: dict[str, str | None] = field(default_factory=dict)
    remediation_intent: str | None = None
    raised: list[str] = field(default_factory=list)

    def apply(self, event: LedgerEvent) -> None:
        verb = event.type.removeprefix(_INCIDENT_PREFIX)
        data = event.data
        if verb == "opened":
            self.severity = data["severity"]
            self.evidence.append(data["evidence"])
            self.stamps = dict.fromkeys(_STAMPS.values())
        elif verb == "evidence.attached":
            self.evidence.append(data["evidence"])
            self.severity = data["severity"]
        elif verb == "severity.raised":
            self.severity = data["to"]
            self.raised.append(data["to"])
        else:
            self.status = data["to"]
            if verb in _STAMPS:
                self.stamps[_STAMPS[verb]] = data["at"]
            if verb == "reopened":
                self.stamps["resolved_at"] = None
            if verb == "mitigating":
                self.remediation_intent = data.get("intent")


class _Ledger:
    """The incident-related part of the ledger, read once, in seq order."""

    def __init__(self) -> None:
        self.signals: dict[str, tuple[int, dict[str, Any]]] = {}
        self.by_service: dict[tuple[str, str], list[detection.SignalFacts]] = defaultdict(list)
        self.rules: dict[str, dict[str, Any]] = {}
        self.rule_events: dict[str, LedgerEvent] = {}
        self.evidence: dict[str, _Evidence] = {}
        self.incidents: dict[str, _IncidentState] = {}
        query = Q(type__in=_TYPES) | Q(type__startswith=_INCIDENT_PREFIX)
        for event in LedgerEvent.objects.filter(query).order_by("seq").iterator(chunk_size=2000):
            self._read(event)

    def _read(self, event: LedgerEvent) -> None:
        data = event.data
        if event.type == "controlplane.signal.received":
            self.signals[data["signal"]] = (event.seq, data)
            self.by_service[(event.tenant, data["service"])].append(_facts(event.seq, data))
        elif event.type == "controlplane.detection.rule.versioned":
            self.rules[data["rule_version"]] = data["content"]
            self.rule_events[data["rule_version"]] = event
        elif event.type == "controlplane.evidence.assembled":
            self.evidence[data["evidence"]] = _Evidence(event.seq, event.tenant, data)
        elif event.type == "controlplane.confidence.assessed":
            self.evidence[data["evidence"]].assessed = data
        elif event.type == "controlplane.promotion.decided":
            self.evidence[data["evidence"]].decided = event
        elif event.type == f"{_INCIDENT_PREFIX}opened":
            self.incidents[data["incident"]] = _IncidentState(data["incident"], event.seq, event.tenant, data)
            self.incidents[data["incident"]].apply(event)
        elif data.get("incident") in self.incidents:
            self.incidents[data["incident"]].apply(event)


def _check_evidence(report: ReplayReport, ledger: _Ledger, eid: str) -> str | None:
    """Recompute one bundle; returns the recomputed decision (or None when it cannot be recomputed)."""
    subject = f"evidence/{eid}"
    record = ledger.evidence.get(eid)
    if record is None:
        report.differ(subject, "ledger", "a projection row", "no controlplane.evidence.assembled event")
        return None
    data, seq = record.data, record.seq
    rule = ledger.rules.get(data["rule_version"])
    if rule is None:
        report.differ(subject, "rule_version", data["rule_version"], "no recorded rule version", seq)
        return None
    rule_event = ledger.rule_events[data["rule_version"]]
    report.differ(
        f"rule/{rule_event.data['rule']}",
        "rule_version",
        data["rule_version"],
        rule_version_id(
            tenant=rule_event.tenant,
            name=rule_event.data["rule"],
            version=rule_event.data["version"],
            content=rule,
        ),
        rule_event.seq,
    )
    trigger_record = ledger.signals.get(data["trigger"])
    if trigger_record is None:
        report.differ(subject, "trigger", data["trigger"], "no recorded signal", seq)
        return None
    trigger = _facts(*trigger_record)
    chosen = detection.select(rule, trigger, ledger.by_service[(record.tenant, trigger.service)]) or []
    start, end = detection.window_of(rule, trigger)
    report.differ(subject, "signals", data["signals"], sorted(s.id for s in chosen), seq)
    report.differ(
        subject, "window", data["window"], {"start": format_time(start), "end": format_time(end)}, seq
    )
    report.differ(
        subject,
        "id",
        eid,
        detection.evidence_id(
            signal_ids=data["signals"], rule_version=data["rule_version"], start=start, end=end
        ),
        seq,
    )
    report.differ(subject, "severity", data["severity"], detection.evidence_severity(rule), seq)
    if not chosen:
        return None
    if record.assessed is None or record.decided is None:
        report.differ(subject, "ledger", "assessed and decided events", "missing", seq)
        return None
    assessed = detection.assess(rule, chosen, model_version=record.assessed["model_version"])
    report.differ(subject, "confidence.factors", record.assessed["factors"], assessed.factors_data(), seq)
    report.differ(subject, "confidence.score_bp", record.assessed["score_bp"], assessed.score_bp, seq)
    verdict = detection.promote(assessed.score_bp, threshold_bp=record.decided.data["threshold_bp"])
    decided = record.decided
    report.differ(subject, "decision", decided.data["decision"], verdict.decision, decided.seq)
    report.differ(
        subject, "decision.reason_codes", decided.reason_codes, list(verdict.reason_codes), decided.seq
    )
    _check_evidence_rows(report, eid, data, record.assessed, decided)
    return verdict.decision


def _check_evidence_rows(
    report: ReplayReport, eid: str, data: dict[str, Any], assessed: dict[str, Any], decided: LedgerEvent
) -> None:
    """The projection rows of one bundle against its recorded events."""
    subject = f"evidence/{eid}"
    row = EvidenceBundle.objects.select_related("assessment", "decision").filter(pk=eid).first()
    if row is None:
        report.differ(subject, "row", "present", "missing")
        return
    report.differ(subject, "row.signal_ids", row.signal_ids, data["signals"])
    report.differ(subject, "row.rule_version", row.rule_version_id, data["rule_version"])
    report.differ(
        subject,
        "row.window",
        {"start": format_time(row.window_start), "end": format_time(row.window_end)},
        data["window"],
    )
    report.differ(subject, "row.severity", row.severity, data["severity"])
    assessment = getattr(row, "assessment", None)
    decision = getattr(row, "decision", None)
    if assessment is None or decision is None:
        report.differ(subject, "row.assessment_and_decision", "present", "missing")
        return
    report.differ(subject, "row.model_version", assessment.model_version, assessed["model_version"])
    report.differ(subject, "row.factors", assessment.factors, assessed["factors"])
    report.differ(subject, "row.score_bp", assessment.score_bp, assessed["score_bp"])
    report.differ(subject, "row.decision", decision.decision, decided.data["decision"])
    report.differ(subject, "row.reason_codes", decision.reason_codes, decided.reason_codes)


def _fmt(value: datetime | None) -> str | None:
    return format_time(value) if value else None


def _check_incident(report: ReplayReport, ledger: _Ledger, state: _IncidentState) -> None:
    subject = f"incident/{state.id}"
    data = state.data
    report.differ(
        subject,
        "id",
        state.id,
        detection.incident_id(service=data["service"], evidence=data["evidence"]),
        state.seq,
    )
    decisions = {eid: _check_evidence(report, ledger, eid) for eid in state.evidence}
    report.differ(subject, "opening decision", "PROMOTE", decisions.get(data["evidence"]), state.seq)
    opening = ledger.evidence.get(data["evidence"])
    if opening is not None:  # (a missing one is reported by _check_evidence)
        report.differ(subject, "opened_at", data["opened_at"], opening.data["window"]["end"], state.seq)
    # Derived severity: the maximum of its evidence, raised only by people.
    evidence_severities = [
        ledger.evidence[e].data["severity"] for e in state.evidence if e in ledger.evidence
    ]
    report.differ(
        subject, "derived severity", state.severity, severity_max(*evidence_severities, *state.raised)
    )
    row = Incident.objects.filter(pk=state.id).first()
    if row is None:
        report.differ(subject, "row", "present", "missing")
        return
    report.differ(subject, "status", row.status, state.status)
    report.differ(subject, "severity", row.severity, state.severity)
    report.differ(subject, "service", row.service, data["service"])
    report.differ(subject, "opened_at", _fmt(row.opened_at), data["opened_at"])
    for name, value in state.stamps.items():
        report.differ(subject, name, _fmt(getattr(row, name)), value)
    report.differ(subject, "remediation_intent", row.remediation_intent_id, state.remediation_intent)
    attached = sorted(EvidenceBundle.objects.filter(incident_id=state.id).values_list("id", flat=True))
    report.differ(subject, "evidence", attached, sorted(state.evidence))


def replay_incidents(incident_id: str | None = None) -> ReplayReport:
    """Replay one incident (with its evidence) or every incident and every evidence bundle."""
    report = ReplayReport(domain="incidents")
    ledger = _Ledger()
    if incident_id is not None:
        state = ledger.incidents.get(incident_id)
        if state is None:
            known = Incident.objects.filter(pk=incident_id).exists()
            report.differ(
                f"incident/{incident_id}",
                "ledger",
                "a projection row" if known else "an incident",
                "no controlplane.incident.opened event",
            )
            return report
        _check_incident(report, ledger, state)
        report.checked = 1
        return report
    for state in ledger.incidents.values():
        _check_incident(report, ledger, state)
    in_incidents = {e for s in ledger.incidents.values() for e in s.evidence}
    for eid in ledger.evidence:
        if eid not in in_incidents:
            _check_evidence(report, ledger, eid)
    for row_id in Incident.objects.exclude(pk__in=list(ledger.incidents)).values_list("pk", flat=True):
        report.differ(
            f"incident/{row_id}", "ledger", "a projection row", "no controlplane.incident.opened event"
        )
    for row_id in EvidenceBundle.objects.exclude(pk__in=list(ledger.evidence)).values_list("pk", flat=True):
        report.differ(
            f"evidence/{row_id}", "ledger", "a projection row", "no controlplane.evidence.assembled event"
        )
    report.checked = len(ledger.incidents)
    return report


def _replay_verify(subject_id: str | None) -> ReplayReport:
    return replay_incidents(incident_id=subject_id)


# `manage.py replay --incident ID | --incidents`, registered from IncidentsConfig.ready().
INCIDENTS_REPLAYER = Replayer(name="incidents", verify=_replay_verify, subject="incident", every="incidents")
