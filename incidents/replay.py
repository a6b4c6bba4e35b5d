"""Incident replay: rebuild incidents from the ledger alone and re-run every deterministic decision.

From the recorded events only (`controlplane.signal.received`, `.silence.*`, `.detection.rule.versioned`,
`.evidence.assembled`, `.confidence.assessed`, `.promotion.decided`, `.incident.*`):

- for each signal, the silences in force when it was recorded (folded from the silence events before its
  seq: active, its time inside their range, their matchers), oldest first as ingest applies them; the
  signal's own `suppressed_by` is checked against that, never taken from it (REPLAY_SUPPRESSION_MISMATCH);
- for each evidence bundle, with the *recorded* rule version and model version: which signals the rule
  selects (those recorded up to the trigger, in the window, matching the rule, not suppressed by the
  rebuilt silences), the window and the evidence id; the confidence factors and score
  (REPLAY_CONFIDENCE_MISMATCH); the promotion decision with its reason codes under the threshold the
  recorded rule and model versions give, not the one the decision event states (REPLAY_DECISION_MISMATCH);
- for each incident: its id (SHA-256(service + opening evidence id)), that the opening decision was
  PROMOTE, every recorded transition judged against the incident state machine (the model's own
  django-fsm transitions: INCIDENT_TRANSITION_NOT_ALLOWED, INCIDENT_SEVERITY_NOT_RAISED), and its state
  (status, severity, evidence, timestamps, remediation) by folding its events.

Each recomputed value is compared with what the ledger recorded and with the projection rows; every
disagreement is a `Difference` (a re-taken decision's rebuilt side starts with its reason code). A rule
changed later cannot alter an old decision: decisions name the version they used, and replay uses that
version's recorded content.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q

from controlplane.kernel.replay import Difference, Replayer, ReplayReport
from controlplane.ledger.models import LedgerEvent
from incidents import detection
from incidents.models import (
    OPEN_STATUSES,
    SEVERITY_RANK,
    EvidenceBundle,
    Incident,
    IncidentNote,
    IncidentStatus,
    SilenceStatus,
    severity_max,
)
from incidents.normalise import SERVICE_LABELS, attribute, format_time
from incidents.services.labels import LABEL_MAPPING_EVENT
from incidents.services.rules import rule_version_id

_TYPES = (
    "controlplane.signal.received",
    LABEL_MAPPING_EVENT,
    "controlplane.detection.rule.versioned",
    "controlplane.evidence.assembled",
    "controlplane.confidence.assessed",
    "controlplane.promotion.decided",
)
_INCIDENT_PREFIX = "controlplane.incident."
_SILENCE_PREFIX = "controlplane.silence."
_STAMPS = {
    "acknowledged": "acknowledged_at",
    "mitigating": "mitigating_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
}


# The promotion threshold each confidence model version promotes at. A rule version whose recorded content
# names its own (`promotion_threshold_bp`) overrides it; the decision event's `threshold_bp` is checked
# against this, never used.
MODEL_THRESHOLDS_BP = {detection.MODEL_VERSION: detection.PROMOTE_THRESHOLD_BP}

# The incident state machine, read from the model's own transitions: (transition, source, target).
_LEGAL = {
    (t.name, str(t.source), str(t.target))
    for t in Incident._meta.get_field("status").get_all_transitions(Incident)
}
# The ledger verb of each transition (incidents.services.lifecycle writes `controlplane.incident.<verb>`).
_VERB_TRANSITION = {
    "acknowledged": "acknowledge",
    "mitigating": "mitigate",
    "resolved": "resolve",
    "closed": "close",
    "reopened": "reopen",
}


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _mismatch(
    report: ReplayReport, subject: str, name: str, recorded: Any, rebuilt: Any, code: str, seq: int | None
) -> None:
    """A re-taken value that differs from the recorded one; the rebuilt side names the reason code."""
    if recorded != rebuilt:
        report.differences.append(Difference(subject, name, recorded, f"{code}: {rebuilt}", seq))


def promotion_threshold_bp(rule: dict[str, Any], model_version: str) -> int | None:
    """The threshold the recorded rule version and model version promote at (None: an unknown model)."""
    if "promotion_threshold_bp" in rule:
        return rule["promotion_threshold_bp"]
    return MODEL_THRESHOLDS_BP.get(model_version)


@dataclass
class _SilenceState:
    """A silence as its events say it is (what `signals.silence_matching` reads from the table)."""

    id: str
    tenant: str
    created_at: datetime
    service: str
    name: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    status: str

    def covers(self, data: dict[str, Any], observed: datetime) -> bool:
        """In force at the signal's own time, and every matcher of it matches the signal."""
        if self.status != SilenceStatus.ACTIVE or not self.starts_at <= observed < self.ends_at:
            return False
        if self.service and self.service != data["service"]:
            return False
        if self.name and self.name != data["name"]:
            return False
        return all(data["labels"].get(k) == v for k, v in self.labels.items())


def _facts(seq: int, data: dict[str, Any], suppressed: bool) -> detection.SignalFacts:
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
        suppressed=suppressed,
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
    """An incident as its events say it is, and every recorded change the state machine does not allow
    (`violations`: field, recorded, rebuilt, seq)."""

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
    assignee: str | None = None  # the ref of the person on it, as the last assignment says
    notes: list[int] = field(default_factory=list)  # the seqs of its notes' events
    violations: list[tuple[str, Any, str, int]] = field(default_factory=list)

    def refuse(self, name: str, recorded: Any, code: str, detail: str, seq: int) -> None:
        self.violations.append((name, recorded, f"{code}: {detail}", seq))

    def apply(self, event: LedgerEvent) -> None:
        verb = event.type.removeprefix(_INCIDENT_PREFIX)
        data = event.data
        if verb == "opened":
            self.severity = data["severity"]
            self.evidence.append(data["evidence"])
            self.stamps = dict.fromkeys(_STAMPS.values())
        elif verb == "evidence.attached":
            if self.status not in OPEN_STATUSES:
                self.refuse(
                    "lifecycle.evidence",
                    data["evidence"],
                    "INCIDENT_TRANSITION_NOT_ALLOWED",
                    f"evidence attached to an incident that is {self.status}",
                    event.seq,
                )
            self.evidence.append(data["evidence"])
            self.severity = data["severity"]
        elif verb == "assigned":
            if data.get("previous") != self.assignee:
                self.refuse(
                    "assignment.previous",
                    data.get("previous"),
                    "INCIDENT_ASSIGNEE_UNCHANGED",
                    f"the incident was assigned to {self.assignee or 'nobody'}",
                    event.seq,
                )
            self.assignee = data.get("assignee")
        elif verb == "note.added":
            self.notes.append(event.seq)
        elif verb == "severity.raised":
            self._judge_raise(data, event.seq)
            self.severity = data["to"]
            self.raised.append(data["to"])
        elif verb in _VERB_TRANSITION or "to" in data:
            self._judge_transition(verb, data, event.seq)
            self.status = data["to"]
            if verb in _STAMPS:
                self.stamps[_STAMPS[verb]] = data["at"]
            if verb == "reopened":
                self.stamps["resolved_at"] = None
            if verb == "mitigating":
                self.remediation_intent = data.get("intent")

    def _judge_transition(self, verb: str, data: dict[str, Any], seq: int) -> None:
        """The recorded transition against the model's state machine, from the state the events gave."""
        name = _VERB_TRANSITION.get(verb, verb)
        recorded = f"{data.get('from')} -> {data.get('to')} ({verb})"
        if (name, self.status, data.get("to")) not in _LEGAL:
            sources = sorted({source for n, source, _target in _LEGAL if n == name})
            detail = f"an incident that is {self.status} cannot be {verb}" + (
                f" ({name} goes from {', '.join(sources)})" if sources else " (not a transition of the model)"
            )
            self.refuse("lifecycle.transition", recorded, "INCIDENT_TRANSITION_NOT_ALLOWED", detail, seq)
        elif data.get("from") != self.status:
            self.refuse(
                "lifecycle.transition",
                recorded,
                "INCIDENT_TRANSITION_NOT_ALLOWED",
                f"the incident was {self.status}, not {data.get('from')}",
                seq,
            )

    def _judge_raise(self, data: dict[str, Any], seq: int) -> None:
        """Only up, never on a closed incident (incident_raise_severity's rules)."""
        recorded = f"{data.get('from')} -> {data.get('to')}"
        if self.status == IncidentStatus.CLOSED:
            self.refuse(
                "lifecycle.severity",
                recorded,
                "INCIDENT_TRANSITION_NOT_ALLOWED",
                "a closed incident does not change",
                seq,
            )
        if SEVERITY_RANK.get(data.get("to"), -1) <= SEVERITY_RANK[self.severity]:
            self.refuse(
                "lifecycle.severity",
                recorded,
                "INCIDENT_SEVERITY_NOT_RAISED",
                f"the incident was {self.severity} already",
                seq,
            )


@dataclass
class _SignalRecord:
    """A recorded signal: its event, the silence replay finds in force for it (None: none), and what its
    attribution and rule match are under the label mapping and rules in force at its seq."""

    seq: int
    tenant: str
    data: dict[str, Any]
    silence: str | None
    attribution: tuple[str, str] | None = None  # (service, label) re-derived; None: the source named it
    rule_matched: bool | None = None

    @property
    def facts(self) -> detection.SignalFacts:
        return _facts(self.seq, self.data, self.silence is not None)


class _Ledger:
    """The incident-related part of the ledger, read once, in seq order."""

    def __init__(self) -> None:
        self.signals: dict[str, _SignalRecord] = {}
        self.by_service: dict[tuple[str, str], list[detection.SignalFacts]] = defaultdict(list)
        self.silences: dict[str, _SilenceState] = {}
        self.tenant_silences: dict[str, list[_SilenceState]] = defaultdict(list)
        self.rules: dict[str, dict[str, Any]] = {}
        self.rule_events: dict[str, LedgerEvent] = {}
        self.evidence: dict[str, _Evidence] = {}
        self.incidents: dict[str, _IncidentState] = {}
        self.open_by_key: dict[tuple[str, str, str], str] = {}  # (tenant, service, rule) -> open incident
        self.mappings: dict[str, dict[int, list[str]]] = defaultdict(dict)  # tenant -> version -> labels
        self.current_rules: dict[str, dict[str, dict[str, Any]]] = defaultdict(
            dict
        )  # tenant -> name -> content
        query = (
            Q(type__in=_TYPES) | Q(type__startswith=_INCIDENT_PREFIX) | Q(type__startswith=_SILENCE_PREFIX)
        )
        for event in LedgerEvent.objects.filter(query).order_by("seq").iterator(chunk_size=2000):
            self._read(event)

    def _silence_for(self, tenant: str, data: dict[str, Any]) -> str | None:
        """The first silence in force (oldest first, as ingest orders them) that covers the signal."""
        observed = _time(data["observed_at"])
        in_force = [s for s in self.tenant_silences[tenant] if s.covers(data, observed)]
        return min(in_force, key=lambda s: (s.created_at, s.id)).id if in_force else None

    def _read_silence(self, event: LedgerEvent) -> None:
        data, verb = event.data, event.type.removeprefix(_SILENCE_PREFIX)
        if verb == "created":
            match = data["match"]
            silence = self.silences[data["silence"]] = _SilenceState(
                id=data["silence"],
                tenant=event.tenant,
                created_at=event.time,
                service=match["service"],
                name=match["name"],
                labels=match["labels"],
                starts_at=_time(data["starts_at"]),
                ends_at=_time(data["ends_at"]),
                status=data["status"],
            )
            self.tenant_silences[event.tenant].append(silence)
            return
        silence = self.silences.get(data.get("silence"))
        if silence is None:
            return
        if verb in ("activated", "rejected"):
            silence.status = data["status"]
        elif verb == "expired":
            silence.status, silence.ends_at = SilenceStatus.EXPIRED, _time(data["ends_at"])

    def _rederive(self, record: _SignalRecord) -> None:
        """The signal's service from its recorded labels under the recorded mapping version, and whether a
        rule in force then matched it (as ingest decides them: services.signals.rule_matched_by)."""
        data = record.data
        if "attribution" in data:
            version = data["attribution"].get("mapping_version", 0)
            names = SERVICE_LABELS if version == 0 else self.mappings[record.tenant].get(version)
            record.attribution = attribute(data["labels"], names) if names is not None else ("?", "?")
        # judged on the recorded suppression: a wrong one is the suppression check's difference, not this
        if data["status"] != "firing" or data.get("suppressed_by") is not None or not data["service"]:
            return
        facts = _facts(record.seq, data, False)
        contents = self.current_rules[record.tenant].values()
        record.rule_matched = any(detection.matches(content, facts) for content in contents)

    def _read(self, event: LedgerEvent) -> None:
        data = event.data
        if event.type == LABEL_MAPPING_EVENT:
            self.mappings[event.tenant][data["version"]] = data["service_labels"]
        elif event.type == "controlplane.signal.received":
            record = _SignalRecord(event.seq, event.tenant, data, self._silence_for(event.tenant, data))
            self._rederive(record)
            self.signals[data["signal"]] = record
            self.by_service[(event.tenant, data["service"])].append(record.facts)
        elif event.type.startswith(_SILENCE_PREFIX):
            self._read_silence(event)
        elif event.type == "controlplane.detection.rule.versioned":
            self.rules[data["rule_version"]] = data["content"]
            self.rule_events[data["rule_version"]] = event
            self.current_rules[event.tenant][data["rule"]] = data["content"]
        elif event.type == "controlplane.evidence.assembled":
            self.evidence[data["evidence"]] = _Evidence(event.seq, event.tenant, data)
        elif event.type == "controlplane.confidence.assessed":
            self.evidence[data["evidence"]].assessed = data
        elif event.type == "controlplane.promotion.decided":
            self.evidence[data["evidence"]].decided = event
        elif event.type == f"{_INCIDENT_PREFIX}opened":
            state = _IncidentState(data["incident"], event.seq, event.tenant, data)
            key = (event.tenant, data["service"], data["rule"])
            if key in self.open_by_key:
                state.refuse(
                    "lifecycle.opened",
                    data["incident"],
                    "INCIDENT_TRANSITION_NOT_ALLOWED",
                    f"incident {self.open_by_key[key]} of the same service and rule was open",
                    event.seq,
                )
            self.incidents[data["incident"]] = state
            state.apply(event)
            self._track(state)
        elif data.get("incident") in self.incidents:
            state = self.incidents[data["incident"]]
            key = (state.tenant, state.data["service"], state.data["rule"])
            if (
                event.type == f"{_INCIDENT_PREFIX}reopened"
                and self.open_by_key.get(key, state.id) != state.id
            ):
                state.refuse(
                    "lifecycle.transition",
                    "resolved -> open (reopened)",
                    "INCIDENT_TRANSITION_NOT_ALLOWED",
                    f"incident {self.open_by_key[key]} of the same service and rule was open",
                    event.seq,
                )
            state.apply(event)
            self._track(state)

    def _track(self, state: _IncidentState) -> None:
        """One open incident per (tenant, service, rule): remember which one is open now."""
        key = (state.tenant, state.data["service"], state.data["rule"])
        if state.status in OPEN_STATUSES:
            self.open_by_key.setdefault(key, state.id)
        elif self.open_by_key.get(key) == state.id:
            del self.open_by_key[key]


def _check_attribution(report: ReplayReport, record: _SignalRecord) -> None:
    """The recorded service and attributing label, and 'no rule matched', against what replay re-derives
    (only for events that record them: older events named neither)."""
    data, subject = record.data, f"signal/{record.data['signal']}"
    if record.attribution is not None:
        recorded = (data["service"], data["attribution"].get("label", ""))
        _mismatch(
            report, subject, "attribution", list(recorded), list(record.attribution),
            "REPLAY_ATTRIBUTION_MISMATCH", record.seq,
        )  # fmt: skip
    if "rule_matched" in data:
        _mismatch(
            report, subject, "rule_matched", data["rule_matched"], record.rule_matched,
            "REPLAY_ATTRIBUTION_MISMATCH", record.seq,
        )  # fmt: skip


def _check_suppression(report: ReplayReport, ledger: _Ledger, signals: list[str]) -> None:
    """Each signal's recorded suppression against the silences replay found in force at its time (and its
    attribution, `_check_attribution`)."""
    for sid in signals:
        record = ledger.signals[sid]
        _check_attribution(report, record)
        recorded = record.data.get("suppressed_by")
        if recorded != record.silence:
            rebuilt = f"silence {record.silence} was in force" if record.silence else "no silence in force"
            report.differences.append(
                Difference(
                    f"signal/{sid}",
                    "suppressed_by",
                    recorded,
                    f"REPLAY_SUPPRESSION_MISMATCH: {rebuilt}",
                    record.seq,
                )
            )


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
    trigger = trigger_record.facts
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
    model_version, decided = record.assessed["model_version"], record.decided
    threshold = promotion_threshold_bp(rule, model_version)
    if model_version not in detection.MODELS or threshold is None:
        report.differences.append(
            Difference(
                subject,
                "confidence.model_version",
                model_version,
                "REPLAY_CONFIDENCE_MISMATCH: no such confidence model version",
                seq,
            )
        )
        return None
    # Confidence, again, under the recorded model version, from the signals replay selected.
    assessed = detection.assess(rule, chosen, model_version=model_version)
    confidence = [
        ("confidence.factors", record.assessed["factors"], assessed.factors_data(), seq),
        ("confidence.score_bp", record.assessed["score_bp"], assessed.score_bp, seq),
        ("decision.score_bp", decided.data["score_bp"], assessed.score_bp, decided.seq),
        ("decision.model_version", decided.data.get("model_version"), model_version, decided.seq),
    ]
    for name, recorded, rebuilt, at_seq in confidence:
        _mismatch(report, subject, name, recorded, rebuilt, "REPLAY_CONFIDENCE_MISMATCH", at_seq)
    # The decision, again, at the threshold of the recorded rule and model versions (the decision event's
    # own `threshold_bp` is what is checked, not what decides).
    verdict = detection.promote(assessed.score_bp, threshold_bp=threshold)
    promotion = [
        ("decision", decided.data["decision"], verdict.decision),
        ("decision.threshold_bp", decided.data["threshold_bp"], threshold),
        ("decision.reason_codes", decided.reason_codes, list(verdict.reason_codes)),
    ]
    for name, recorded, rebuilt in promotion:
        _mismatch(report, subject, name, recorded, rebuilt, "REPLAY_DECISION_MISMATCH", decided.seq)
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
    for name, recorded, rebuilt, seq in state.violations:
        report.differences.append(Difference(subject, name, recorded, rebuilt, seq))
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
    row = Incident.objects.filter(pk=state.id).select_related("assignee__tenant").first()
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
    assignee = row.assignee.ref if row.assignee_id else None
    report.differ(subject, "assignee", assignee, state.assignee)
    notes = list(
        IncidentNote.objects.filter(incident_id=state.id).order_by("seq").values_list("seq", flat=True)
    )
    report.differ(subject, "notes", notes, state.notes)
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
        service = (state.tenant, state.data["service"])
        _check_suppression(
            report,
            ledger,
            [sid for sid, r in ledger.signals.items() if (r.tenant, r.data["service"]) == service],
        )
        _check_incident(report, ledger, state)
        report.checked = 1
        return report
    _check_suppression(report, ledger, list(ledger.signals))
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
