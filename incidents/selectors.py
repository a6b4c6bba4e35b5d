"""Reads of the incidents app for the API, the console and the CLI: lists, the board, details, the
timeline; the rows the console pages show (board columns, an incident's detail with its timeline, evidence,
confidence and decision reasons, the signals view, the silences list); and the dashboard's panel.

Every read is scoped to a tenant.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.core.paginator import Page, Paginator
from django.db.models import Count, Prefetch, Q, QuerySet
from django.urls import reverse

from approvals.models import ApprovalDecision, ApprovalVote
from approvals.selectors import QueueNote, QueueRow
from controlplane.identity.models import Principal, PrincipalKind, Tenant
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.reasons import CATALOGUE
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Execution, Intent, StepRun, StepStatus
from incidents.models import (
    OPEN_STATUSES,
    SEVERITY_RANK,
    DetectionRule,
    EvidenceBundle,
    Incident,
    IncidentNote,
    IncidentStatus,
    Signal,
    Silence,
    SilenceStatus,
    severity_max,
)
from incidents.services import allowed_transitions, silence_state


def incident_queryset(*, tenant: Tenant) -> QuerySet[Incident]:
    """A tenant's incidents with what lists show (rule name, evidence count)."""
    return (
        Incident.objects.filter(tenant=tenant)
        .select_related("rule", "tenant", "remediation_intent", "assignee__tenant")
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


def incident_notes(*, incident: Incident) -> list[IncidentNote]:
    """The notes people wrote on the incident, oldest first, with their authors."""
    return list(
        IncidentNote.objects.filter(incident=incident).select_related("author__tenant").order_by("seq")
    )


def incident_assignee_get(*, tenant: Tenant, name: str) -> Principal:
    """The person of `tenant` named `name` (an assignee, as the API and CLI name them); anything else is
    INCIDENT_ASSIGNEE_INVALID (the service then checks they may manage incidents)."""
    found = (
        Principal.objects.filter(tenant=tenant, name=name, kind=PrincipalKind.HUMAN, is_active=True)
        .select_related("tenant")
        .first()
    )
    if found is None:
        raise ControlPlaneError("INCIDENT_ASSIGNEE_INVALID", f"no person named {name!r} in this tenant")
    return found


def incident_assignees(*, tenant: Tenant, now: datetime) -> list[Principal]:
    """The people of the tenant an incident can be given to: active humans holding incidents.manage now
    (one query; the service checks the same again when assigning)."""
    return list(
        Principal.objects.filter(
            tenant=tenant,
            kind=PrincipalKind.HUMAN,
            is_active=True,
            grants__capability="incidents.manage",
            grants__revoked_at__isnull=True,
        )
        .filter(Q(grants__expires_at__isnull=True) | Q(grants__expires_at__gt=now))
        .select_related("tenant")
        .distinct()
        .order_by("name")
    )


def acknowledged_by(*, incident: Incident) -> str | None:
    """Who acknowledged the incident last (the actor of its latest acknowledged event), or None."""
    return (
        LedgerEvent.objects.filter(
            subject=f"incident/{incident.id}", type="controlplane.incident.acknowledged"
        )
        .order_by("-seq")
        .values_list("actor", flat=True)
        .first()
    )


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


def signal_attribution_counts(*, tenant: Tenant) -> dict[str, int]:
    """How many of the tenant's signals no label attributed, and how many no rule matched (one query)."""
    counts = Signal.objects.filter(tenant=tenant).aggregate(
        unattributed=Count("pk", filter=Q(service="")),
        # icontains on the JSON text: SQLite (the quickstart) has no JSON containment
        no_rule_matched=Count("pk", filter=Q(reason_codes__icontains="SIGNAL_NO_RULE_MATCHED")),
    )
    return {name: value or 0 for name, value in counts.items()}


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


# --- Console rows ---------------------------------------------------------------------------------------

SIGNALS_PER_PAGE = 50
REMEDIATION_CHOICES = 20


# --- Board ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    status: str
    label: str
    incidents: list[Incident]


COLUMN_LABELS = {
    IncidentStatus.OPEN: "Open",
    IncidentStatus.ACKNOWLEDGED: "Acknowledged",
    IncidentStatus.MITIGATING: "Mitigating",
    IncidentStatus.RESOLVED: "Resolved",
    IncidentStatus.CLOSED: "Closed (recent)",
}


def board_columns(*, tenant: Tenant, closed_limit: int = 20) -> list[Column]:
    """The board: one column per state in lifecycle order; only the latest closed incidents."""
    board = incident_board(tenant=tenant, closed_limit=closed_limit)
    return [Column(status, COLUMN_LABELS[status], incidents) for status, incidents in board.items()]


# --- Incident detail ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineRow:
    """One ledger event of the incident, with what the operator reads at a glance."""

    event: LedgerEvent
    kind: str  # signal | evidence | incident
    what: str
    summary: str
    reasons: list[tuple[str, str]]


def _reasons(codes: list[str]) -> list[tuple[str, str]]:
    return [(code, CATALOGUE[code].description if code in CATALOGUE else "") for code in codes or []]


def _summary(event: LedgerEvent) -> tuple[str, str]:
    """(what, summary) of one timeline event, from its recorded data."""
    data = event.data or {}
    verb = event.type.removeprefix("controlplane.")
    if event.type == "controlplane.signal.received":
        suppressed = (
            f" — suppressed by silence {data['suppressed_by'][:12]}" if data.get("suppressed_by") else ""
        )
        return (
            "signal received",
            f"{data.get('source', '')}: {data.get('name', '')} on {data.get('service', '')}, "
            f"{data.get('severity', '')} (raw {data.get('severity_raw') or '—'}), {data.get('status', '')}"
            f"{suppressed}",
        )
    if event.type == "controlplane.evidence.assembled":
        window = data.get("window", {})
        return (
            "evidence assembled",
            f"{len(data.get('signals', []))} signals of rule {data.get('rule', '')} "
            f"v{data.get('rule_version_number', '')} in {window.get('start', '')} → {window.get('end', '')}",
        )
    if event.type == "controlplane.confidence.assessed":
        return (
            "confidence assessed",
            f"{_bp(data.get('score_bp'))} under model {data.get('model_version', '')}",
        )
    if event.type == "controlplane.promotion.decided":
        return (
            "promotion decided",
            f"{data.get('decision', '')}: {_bp(data.get('score_bp'))} "
            f"against the threshold {_bp(data.get('threshold_bp'))}",
        )
    if event.type == "controlplane.incident.opened":
        return "incident opened", f"{data.get('title', '')}, {data.get('severity', '')}"
    if event.type == "controlplane.incident.evidence.attached":
        return (
            "evidence attached",
            f"evidence {str(data.get('evidence', ''))[:12]}, now {data.get('severity', '')}",
        )
    if event.type == "controlplane.incident.assigned":
        text = f"to {data.get('assignee') or 'nobody'} (was {data.get('previous') or 'nobody'})"
        return "assigned", text + (f": {data['reason']}" if data.get("reason") else "")
    if event.type == "controlplane.incident.note.added":
        return "note", str(data.get("text", ""))
    if event.type == "controlplane.incident.severity.raised":
        return "severity raised", f"{data.get('from', '')} → {data.get('to', '')}: {data.get('reason', '')}"
    if event.type.startswith("controlplane.incident."):
        what = verb.removeprefix("incident.")
        text = f"{data.get('from', '')} → {data.get('to', '')}"
        if data.get("reason"):
            text += f": {data['reason']}"
        if data.get("intent"):
            text += f" (remediation intent {data['intent'][:12]})"
        return what, text
    return verb, ""


def _bp(value: Any) -> str:
    """Basis points as the 0-1 score people read (6000 -> 0.60)."""
    if not isinstance(value, int):
        return "—"
    return f"{value / 10_000:.2f}"


def timeline_rows(*, incident: Incident) -> list[TimelineRow]:
    """Every ledger event of the incident (its own, its evidence's and their signals'), in seq order."""
    rows = []
    for event in incident_timeline(incident=incident):
        what, summary = _summary(event)
        rows.append(
            TimelineRow(
                event=event,
                kind=event.subject.split("/", 1)[0],
                what=what,
                summary=summary,
                reasons=_reasons(event.reason_codes),
            )
        )
    return rows


@dataclass(frozen=True)
class FactorRow:
    name: str
    value_bp: int
    weight_bp: int
    contribution_bp: int

    @property
    def value(self) -> str:
        return _bp(self.value_bp)

    @property
    def weight(self) -> str:
        return _bp(self.weight_bp)

    @property
    def contribution(self) -> str:
        return f"{self.contribution_bp / 10_000:.4f}"


@dataclass(frozen=True)
class EvidenceView:
    """One evidence bundle as the detail page shows it: its signals, confidence factors and decision."""

    evidence: EvidenceBundle
    signals: list[Signal]
    factors: list[FactorRow]
    model_version: str
    score: str
    decision: str
    threshold: str
    reasons: list[tuple[str, str]]


def evidence_views(*, incident: Incident) -> list[EvidenceView]:
    """The incident's evidence, oldest first (prefetched by `incident_get`), with its signals."""
    bundles = list(incident.evidence.all())
    ids = {sid for bundle in bundles for sid in bundle.signal_ids}
    signals = {s.pk: s for s in Signal.objects.filter(pk__in=ids).select_related("suppressed_by")}
    views = []
    for bundle in bundles:
        assessment = getattr(bundle, "assessment", None)
        decision = getattr(bundle, "decision", None)
        views.append(
            EvidenceView(
                evidence=bundle,
                signals=sorted(
                    (signals[sid] for sid in bundle.signal_ids if sid in signals), key=lambda s: s.seq
                ),
                factors=[
                    FactorRow(f["name"], f["value_bp"], f["weight_bp"], f["contribution_bp"])
                    for f in (assessment.factors if assessment else [])
                ],
                model_version=assessment.model_version if assessment else "",
                score=_bp(assessment.score_bp) if assessment else "—",
                decision=decision.decision if decision else "",
                threshold=_bp(decision.threshold_bp) if decision else "—",
                reasons=_reasons(decision.reason_codes if decision else []),
            )
        )
    return views


def incident_detail(*, tenant: Tenant, incident_id: str) -> dict[str, Any] | None:
    """Everything the detail page shows of one incident, or None when the tenant has no such incident:
    its alerts first (what they say, firing or resolved), who acknowledged it, the remediation's state in
    words, the severity's explanation, the evidence, the notes and the timeline."""
    incident = incident_get(tenant=tenant, incident_id=incident_id)
    if incident is None:
        return None
    timeline = timeline_rows(incident=incident)
    evidence = evidence_views(incident=incident)
    alerts = incident_alerts(incident=incident, evidence=evidence)
    return {
        "incident": incident,
        "allowed": allowed_transitions(incident),
        "timeline": timeline,
        "evidence": evidence,
        "alerts": alerts,
        "acknowledgement": _acknowledgement(timeline),
        "remediation": remediation_state(incident=incident),
        "severity_words": severity_words(incident=incident, evidence=evidence),
        "notes": incident_notes(incident=incident),
    }


# --- Incident detail: the alerts, first -----------------------------------------------------------------

# The labels an on-call person reads first (Alertmanager's UI shows them beside the alert name).
KEY_LABELS = ("instance", "job")
RUNBOOK_KEYS = ("runbook_url", "runbook")


def http_url(value: Any) -> str:
    """`value` if it is an absolute http or https URL, else "": alert data is untrusted, and a link to
    `javascript:` or `data:` must never be rendered (the text is still shown, escaped)."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return value.strip()


@dataclass(frozen=True)
class AlertView:
    """One alert of the incident (one fingerprint and start): its latest notification, and what it says."""

    name: str
    status: str  # firing | resolved (a resolved notification arrived for it)
    severity: str
    starts_at: datetime
    ends_at: datetime | None
    summary: str
    description: str
    labels: list[tuple[str, str]]  # the labels that matter (instance, job), when present
    generator_url: str  # as sent (shown as text)
    generator_href: str  # only an http(s) URL, else ""
    runbook_url: str
    runbook_href: str
    fingerprint: str


@dataclass(frozen=True)
class IncidentAlerts:
    alerts: list[AlertView]

    @property
    def firing(self) -> int:
        return sum(1 for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> int:
        return sum(1 for a in self.alerts if a.status == "resolved")

    @property
    def all_resolved(self) -> bool:
        return bool(self.alerts) and self.firing == 0


def incident_alerts(*, incident: Incident, evidence: list[EvidenceView]) -> IncidentAlerts:
    """The alerts behind the incident's evidence, firing first: one per (fingerprint, start), marked
    resolved when a resolved notification of the same alert (same fingerprint and startsAt, as
    Alertmanager sends it) was received. One query beyond the evidence's signals."""
    firing: dict[tuple[str, datetime], Signal] = {}
    for view in evidence:
        for signal in view.signals:
            key = (signal.fingerprint, signal.starts_at)
            if key not in firing or firing[key].seq < signal.seq:
                firing[key] = signal
    resolved: dict[tuple[str, datetime], Signal] = {}
    if firing:
        for signal in Signal.objects.filter(
            tenant_id=incident.tenant_id,
            service=incident.service,
            status="resolved",
            fingerprint__in={fingerprint for fingerprint, _ in firing},
        ).order_by("seq"):
            key = (signal.fingerprint, signal.starts_at)
            if key in firing:
                resolved[key] = signal
    alerts = []
    for key, signal in firing.items():
        latest = resolved.get(key, signal)
        annotations = {**(signal.annotations or {}), **(latest.annotations or {})}
        labels = {**(signal.labels or {}), **(latest.labels or {})}
        runbook = next((annotations[k] for k in RUNBOOK_KEYS if annotations.get(k)), "")
        generator = latest.generator_url or signal.generator_url
        alerts.append(
            AlertView(
                name=signal.name,
                status="resolved" if key in resolved else "firing",
                severity=signal.severity,
                starts_at=signal.starts_at,
                ends_at=latest.ends_at if key in resolved else None,
                summary=str(annotations.get("summary", "")),
                description=str(annotations.get("description", "")),
                labels=[(name, str(labels[name])) for name in KEY_LABELS if labels.get(name)],
                generator_url=generator,
                generator_href=http_url(generator),
                runbook_url=str(runbook),
                runbook_href=http_url(runbook),
                fingerprint=signal.fingerprint,
            )
        )
    alerts.sort(key=lambda a: (a.status != "firing", a.starts_at, a.fingerprint))
    return IncidentAlerts(alerts)


@dataclass(frozen=True)
class Acknowledgement:
    actor: str
    at: datetime


def _acknowledgement(timeline: list[TimelineRow]) -> Acknowledgement | None:
    """Who acknowledged the incident, and when (the latest acknowledged event of its timeline)."""
    found = None
    for row in timeline:
        if row.event.type == "controlplane.incident.acknowledged":
            found = Acknowledgement(actor=row.event.actor, at=row.event.time)
    return found


@dataclass(frozen=True)
class RemediationState:
    """The remediation's state in words, and where to act on it (the approval queue), if anywhere."""

    words: str
    waiting_approval: bool
    execution_status: str
    trace_id: str


def remediation_state(*, incident: Incident) -> RemediationState | None:
    """What the incident's remediation is doing, as an on-call person says it: "step act waiting for
    approval by 1 more", "running step restart", "completed", "failed at step act (APPROVAL_REJECTED)".
    Two queries: the execution with its steps, and the approvals given to its waiting steps."""
    intent = incident.remediation_intent
    if intent is None:
        return None
    if intent.status == "rejected":
        code = (intent.rejection or {}).get("code", "")
        return RemediationState(f"the remediation was rejected ({code})", False, "rejected", intent.trace_id)
    execution = Execution.objects.filter(intent=intent).first()
    if execution is None:
        return RemediationState(f"intent {intent.status}, not started", False, "", intent.trace_id)
    runs = list(
        StepRun.objects.filter(execution=execution)
        .select_related("step", "approval")
        .order_by("step__position")
    )
    waiting = [r for r in runs if r.status == StepStatus.WAITING_APPROVAL and r.approval_id]
    given: dict[str, int] = {}
    if waiting:
        for row in (
            ApprovalDecision.objects.filter(
                request_id__in=[r.approval_id for r in waiting], decision=ApprovalVote.APPROVE
            )
            .order_by()
            .values("request_id")
            .annotate(count=Count("approver", distinct=True))
        ):
            given[row["request_id"]] = row["count"]
    phrases = []
    for run in waiting:
        more = max(run.approval.quorum - given.get(run.approval_id, 0), 1)
        phrases.append(f"step {run.step.key} waiting for approval by {more} more")
    running = [r.step.key for r in runs if r.status == StepStatus.RUNNING]
    if running:
        phrases.append(f"running step {', '.join(running)}")
    if execution.status == "failed":
        failed = next((r for r in runs if r.status in (StepStatus.FAILED, StepStatus.BLOCKED)), None)
        codes = " ".join(failed.reason_codes) if failed and failed.reason_codes else ""
        phrases.append(
            f"failed at step {failed.step.key}" + (f" ({codes})" if codes else "") if failed else "failed"
        )
    elif execution.status in ("completed", "cancelled"):
        phrases.append(execution.status)
    if not phrases:
        phrases.append(execution.status)
    return RemediationState("; ".join(phrases), bool(waiting), execution.status, execution.trace_id)


def severity_words(*, incident: Incident, evidence: list[EvidenceView]) -> str:
    """Why the incident has its severity, in the words of its evidence: the rule's implied severity (what
    evidence carries), what its signals said when that differs, or the person who raised it."""
    if incident.severity_raised_to and incident.severity == incident.severity_raised_to:
        implied = severity_max(*(v.evidence.severity for v in evidence)) if evidence else ""
        return f"raised by a person; its evidence implies {implied or 'less'}"
    rules = sorted(
        {f"{v.evidence.rule_version.rule.name} v{v.evidence.rule_version.version}" for v in evidence}
    )
    signalled = {s.severity for v in evidence for s in v.signals}
    words = f"what rule {', '.join(rules)} implies" if rules else "from its evidence"
    if signalled and signalled != {incident.severity}:
        highest = severity_max(*signalled)
        words += f"; its signals said {highest}" + (
            " (a rule sets the incident's severity, not the alerts)" if highest != incident.severity else ""
        )
    return words


def remediation_intents(*, tenant: Tenant, limit: int = REMEDIATION_CHOICES) -> list[Intent]:
    """The tenant's latest accepted intents: what an operator may link when mitigating."""
    return list(
        Intent.objects.filter(tenant=tenant)
        .exclude(status="rejected")
        .select_related("plan", "principal__tenant")
        .order_by("-received_at")[:limit]
    )


# --- Signals --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalFilters:
    service: str = ""
    name: str = ""
    source: str = ""
    status: str = ""
    severity: str = ""
    suppressed: bool | None = None
    silence: str = ""


@dataclass
class SignalRow:
    signal: Signal
    evidence: list[EvidenceBundle] = field(default_factory=list)

    @property
    def dedup_key(self) -> dict[str, str]:
        """What the signal id hashes (`incidents.normalise.signal_id`): a redelivery maps to the same id."""
        return {
            "source": self.signal.source,
            "fingerprint": self.signal.fingerprint,
            "status": self.signal.status,
            "starts_at": self.signal.starts_at.isoformat(),
        }


def signal_page(*, tenant: Tenant, filters: SignalFilters, page: int = 1) -> tuple[Page, list[SignalRow]]:
    """A page of signals, newest first, each with its silence and the evidence bundles that counted it."""
    signals = signal_list(
        tenant=tenant,
        service=filters.service or None,
        status=filters.status or None,
        suppressed=filters.suppressed,
        source=filters.source or None,
    )
    if filters.name:
        signals = signals.filter(name=filters.name)
    if filters.severity:
        signals = signals.filter(severity=filters.severity)
    if filters.silence:
        signals = signals.filter(suppressed_by_id=filters.silence)
    paged = Paginator(signals, SIGNALS_PER_PAGE).get_page(page)
    rows = [SignalRow(s) for s in paged.object_list]
    if rows:
        # One query, portable (SQLite in the quickstart has no JSON containment): the bundles of these
        # services whose window can hold one of these signals; membership is checked here.
        by_signal = {row.signal.pk: row for row in rows}
        observed = [row.signal.observed_at for row in rows]
        candidates = (
            EvidenceBundle.objects.filter(
                tenant=tenant,
                service__in={row.signal.service for row in rows},
                window_end__gte=min(observed),
                window_start__lte=max(observed),
            )
            .select_related("decision", "rule_version__rule")
            .order_by("seq")
        )
        for bundle in candidates:
            for sid in bundle.signal_ids:
                if sid in by_signal:
                    by_signal[sid].evidence.append(bundle)
    return paged, rows


def signal_sources(*, tenant: Tenant) -> list[str]:
    return list(
        Signal.objects.filter(tenant=tenant).values_list("source", flat=True).distinct().order_by("source")
    )


# --- Silences -------------------------------------------------------------------------------------------

SILENCE_GROUPS = OrderedDict(
    [
        ("pending_approval", "Pending approval"),
        ("active", "Active"),
        ("scheduled", "Scheduled"),
        ("expired", "Expired"),
        ("rejected", "Rejected"),
    ]
)


@dataclass(frozen=True)
class SilenceRow:
    silence: Silence
    state: str


def silence_groups(
    *, tenant: Tenant, now: datetime, ended_limit: int = 20
) -> OrderedDict[str, list[SilenceRow]]:
    """Silences by what a person sees: pending approval, active, scheduled (by the clock), and the latest
    expired (expired by a person, or past their end) and rejected ones."""
    silences = silence_list(tenant=tenant)
    running = Q(status=SilenceStatus.ACTIVE, ends_at__gt=now)
    ended = Q(status=SilenceStatus.EXPIRED) | Q(status=SilenceStatus.ACTIVE, ends_at__lte=now)
    groups: OrderedDict[str, list[SilenceRow]] = OrderedDict((state, []) for state in SILENCE_GROUPS)
    queries = [
        silences.filter(status=SilenceStatus.PENDING_APPROVAL).order_by("created_at", "id"),
        silences.filter(running).order_by("ends_at", "id"),
        silences.filter(ended).order_by("-ends_at", "id")[:ended_limit],
        silences.filter(status=SilenceStatus.REJECTED).order_by("-created_at", "id")[:ended_limit],
    ]
    for query in queries:
        for silence in query:
            state = silence_state(silence, now)
            groups[state].append(SilenceRow(silence, state))
    return groups


# --- Approval queue: the incident a remediation step belongs to -----------------------------------------


def approval_queue_incidents(rows: list[QueueRow]) -> None:
    """A queue context for plan-step approvals (`runtime.step`): a step of an incident's remediation says
    which incident, linked to it. One query for the page: the incidents whose remediation intent runs the
    rows' executions (an execution's id is its intent's, one to one)."""
    executions = {row.summary.get("execution") for row in rows} - {None, ""}
    if not executions:
        return
    tenants = {row.approval.tenant_id for row in rows}
    by_execution: dict[str, list[Incident]] = {}
    for incident in (
        Incident.objects.filter(tenant_id__in=tenants, remediation_intent__execution__id__in=executions)
        .select_related("remediation_intent__execution")
        .only("id", "title", "status", "tenant_id", "remediation_intent__execution__id")
        .order_by("opened_at", "id")
    ):
        by_execution.setdefault(incident.remediation_intent.execution.id, []).append(incident)
    for row in rows:
        for incident in by_execution.get(row.summary.get("execution"), []):
            if incident.tenant_id != row.approval.tenant_id:
                continue
            row.notes.append(
                QueueNote(
                    label="remediation of incident",
                    text=f"{incident.title} ({incident.status})",
                    href=reverse("incidents:detail", args=[incident.pk]),
                )
            )


# --- Dashboard panel ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenIncidents:
    """The tenant's incidents still open (open, acknowledged, mitigating), counted by severity and state."""

    states: list[str]
    rows: list[tuple[str, list[int]]]  # (severity, a count per state), most severe first, only those with any

    @property
    def total(self) -> int:
        return sum(sum(counts) for _, counts in self.rows)


def open_incident_total(*, tenant: Tenant) -> int:
    """How many of the tenant's incidents are still open (the navigation badge); one query."""
    return Incident.objects.filter(tenant=tenant, status__in=OPEN_STATUSES).count()


def open_incident_counts(*, tenant: Tenant) -> OpenIncidents:
    """Open incidents by severity and state; one query."""
    states = [str(s) for s in OPEN_STATUSES]
    counted = {
        (row["severity"], row["status"]): row["count"]
        for row in Incident.objects.filter(tenant=tenant, status__in=states)
        .order_by()
        .values("severity", "status")
        .annotate(count=Count("id"))
    }
    severities = sorted({severity for severity, _ in counted}, key=SEVERITY_RANK.__getitem__, reverse=True)
    return OpenIncidents(
        states=states,
        rows=[(severity, [counted.get((severity, state), 0) for state in states]) for severity in severities],
    )
