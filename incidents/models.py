"""Signals, detection rules, evidence, confidence, promotion decisions, incidents and silences.

Every row here is a projection of ledger events written by `incidents.services` in the same transaction;
`incidents.replay` rebuilds them from the ledger and recomputes the deterministic decisions. Ids are
content hashes (see docs/incidents.md), so the same signals and rule versions give the same ids.
Transitions (django-fsm-2) hold only their guards and the state change; services lock, save and ledger.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django_fsm import FSMField, transition

from controlplane.identity.models import Principal, Tenant
from controlplane.ledger.models import AppendOnlyModel


class Severity(models.TextChoices):
    """The five canonical severities, lowest first (see `incidents.normalise.SEVERITY_TABLE`)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def severity_max(*severities: str) -> str:
    return max(severities, key=SEVERITY_RANK.__getitem__)


class SignalStatus(models.TextChoices):
    FIRING = "firing"
    RESOLVED = "resolved"


class SourceKind(models.TextChoices):
    GENERIC = "generic"
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    CLOUDEVENTS = "cloudevents"


class Signal(models.Model):
    """One normalised alert delivery. `id` = SHA-256 of the dedup key (tenant, source, fingerprint,
    status, starts_at): a redelivery maps to the same id and is stored once."""

    id = models.CharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="signals")
    seq = models.BigIntegerField(unique=True, help_text="The seq of its controlplane.signal.received event.")
    source = models.CharField(max_length=200)
    source_kind = models.CharField(max_length=16, choices=SourceKind.choices)
    service = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    severity_raw = models.CharField(max_length=64, blank=True)
    fingerprint = models.CharField(max_length=128)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=SignalStatus.choices)
    observed_at = models.DateTimeField(help_text="startsAt while firing, endsAt once resolved.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    generator_url = models.URLField(max_length=2000, blank=True)
    received_at = models.DateTimeField(help_text="Wall clock, informational only: no decision reads it.")
    suppressed_by = models.ForeignKey(
        "Silence", on_delete=models.PROTECT, null=True, blank=True, related_name="suppressed_signals"
    )
    reason_codes = models.JSONField(
        default=list,
        blank=True,
        help_text="What ingest found, as its event records it: SIGNAL_UNATTRIBUTED (no label named the "
        "service; `service` is empty), SUPPRESSED_BY_SILENCE, SIGNAL_NO_RULE_MATCHED.",
    )

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["tenant", "service", "status", "observed_at"]),
            models.Index(fields=["tenant", "seq"]),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.service}/{self.name} {self.status} {self.severity}"


class LabelMapping(AppendOnlyModel):
    """One immutable version of a tenant's label mapping: which alert labels, tried in order, name the
    service of an Alertmanager or Grafana alert. Version 0 (no row) is the default, `service | app | job`;
    every change is a new version, ledgered, and each signal records the version that attributed it.
    `id` = SHA-256 of the canonical (tenant, version, service labels)."""

    immutable_code = "LABEL_MAPPING_INVALID"
    immutable_detail = "a label mapping version never changes; make a new one"

    id = models.CharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="label_mappings")
    version = models.PositiveIntegerField()
    service_labels = models.JSONField(help_text="Label names tried in order; the first non-empty one wins.")
    created_by = models.CharField(max_length=255)
    created_at = models.DateTimeField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["tenant", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version"], name="one_label_mapping_version_number"),
        ]

    def __str__(self) -> str:
        return f"label mapping v{self.version}: {' | '.join(self.service_labels)}"


class DetectionRule(models.Model):
    """A named detection rule of a tenant. Its content lives in immutable `DetectionRuleVersion`s; every
    change is a new version, and decisions name the version they used."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="detection_rules")
    name = models.CharField(max_length=100)
    current_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="one_rule_name_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} v{self.current_version}"

    @property
    def current(self) -> DetectionRuleVersion | None:
        return self.versions.filter(version=self.current_version).first()


class DetectionRuleVersion(AppendOnlyModel):
    """One immutable version of a rule. `id` = SHA-256 of the canonical (tenant, name, version, content)."""

    immutable_code = "RULE_VERSION_IMMUTABLE"
    immutable_detail = "a rule version never changes; make a new one"

    id = models.CharField(primary_key=True, max_length=64)
    rule = models.ForeignKey(DetectionRule, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    match_service = models.CharField(max_length=200, blank=True, help_text="Empty: any service.")
    match_name = models.CharField(max_length=200, blank=True, help_text="Empty: any signal name.")
    match_labels = models.JSONField(default=dict, blank=True, help_text="Every label must be equal.")
    min_severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.INFO)
    threshold = models.PositiveIntegerField(help_text="N matching firing signals ...")
    window_seconds = models.PositiveIntegerField(help_text="... within W seconds of the signals' own times.")
    severity = models.CharField(max_length=16, choices=Severity.choices, help_text="The severity it implies.")
    precision_bp = models.PositiveIntegerField(
        help_text="The rule's recorded precision, in basis points (0-10000)."
    )
    content_hash = models.CharField(max_length=64)
    created_by = models.CharField(max_length=255)
    created_at = models.DateTimeField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["rule", "version"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "version"], name="one_rule_version_number"),
        ]

    def __str__(self) -> str:
        return f"{self.rule.name} v{self.version}"

    def content(self) -> dict:
        """What the version decides with (hashed, ledgered, and used again by replay)."""
        return {
            "enabled": self.enabled,
            "match": {
                "service": self.match_service,
                "name": self.match_name,
                "labels": self.match_labels,
                "min_severity": self.min_severity,
            },
            "threshold": self.threshold,
            "window_seconds": self.window_seconds,
            "severity": self.severity,
            "precision_bp": self.precision_bp,
        }


class EvidenceBundle(models.Model):
    """The signals that met one rule version's threshold in one window.

    `id` = SHA-256 of canonical {signals: sorted ids, rule_version, window: {start, end}}.
    """

    id = models.CharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="evidence")
    rule_version = models.ForeignKey(DetectionRuleVersion, on_delete=models.PROTECT, related_name="evidence")
    service = models.CharField(max_length=200)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(help_text="The triggering signal's observed time.")
    signal_ids = models.JSONField(help_text="Sorted ids of the signals in the bundle.")
    trigger_signal = models.ForeignKey(Signal, on_delete=models.PROTECT, related_name="triggered_evidence")
    severity = models.CharField(max_length=16, choices=Severity.choices)
    incident = models.ForeignKey(
        "Incident", on_delete=models.PROTECT, null=True, blank=True, related_name="evidence"
    )
    seq = models.BigIntegerField(help_text="The seq of its controlplane.evidence.assembled event.")

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["tenant", "service"])]

    def __str__(self) -> str:
        return f"evidence {self.id[:12]} ({len(self.signal_ids)} signals)"


class ConfidenceAssessment(models.Model):
    """The confidence in one evidence bundle: named factors, weights and score (basis points)."""

    evidence = models.OneToOneField(EvidenceBundle, on_delete=models.PROTECT, related_name="assessment")
    model_version = models.CharField(max_length=32)
    factors = models.JSONField(help_text="[{name, value_bp, weight_bp, contribution_bp}, ...]")
    score_bp = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.model_version} {self.score_bp}bp"


class PromotionOutcome(models.TextChoices):
    PROMOTE = "PROMOTE"
    REJECT = "REJECT"


class PromotionDecision(models.Model):
    """The promotion gate's verdict on one evidence bundle, timed by the evidence (never the clock)."""

    evidence = models.OneToOneField(EvidenceBundle, on_delete=models.PROTECT, related_name="decision")
    decision = models.CharField(max_length=8, choices=PromotionOutcome.choices)
    score_bp = models.PositiveIntegerField()
    threshold_bp = models.PositiveIntegerField()
    reason_codes = models.JSONField(default=list)
    decided_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.decision} {self.evidence_id[:12]}"


class IncidentStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATUSES = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATING)


class Incident(models.Model):
    """One incident: id = SHA-256(service + the id of the evidence that opened it).

    At most one incident per (tenant, service, rule) is open at a time (a partial unique constraint),
    so concurrent evidence attaches to it instead of opening another.
    """

    id = models.CharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="incidents")
    service = models.CharField(max_length=200)
    rule = models.ForeignKey(DetectionRule, on_delete=models.PROTECT, related_name="incidents")
    title = models.CharField(max_length=300)
    status = FSMField(default=IncidentStatus.OPEN, choices=IncidentStatus.choices, protected=False)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    severity_raised_to = models.CharField(max_length=16, choices=Severity.choices, blank=True)
    opened_at = models.DateTimeField(help_text="The promotion decision's time.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    mitigating_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    remediation_intent = models.ForeignKey(
        "runtime.Intent", on_delete=models.PROTECT, null=True, blank=True, related_name="incidents"
    )
    assignee = models.ForeignKey(
        Principal,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_incidents",
        help_text="The person on it (PagerDuty's assignee); set by `incident_assign`, ledgered.",
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-opened_at", "id"]
        indexes = [models.Index(fields=["tenant", "status", "opened_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "service", "rule"],
                condition=Q(status__in=["open", "acknowledged", "mitigating"]),
                name="one_open_incident_per_service_and_rule",
            )
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    @transition(field=status, source=IncidentStatus.OPEN, target=IncidentStatus.ACKNOWLEDGED)
    def acknowledge(self) -> None:
        pass

    @transition(
        field=status,
        source=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED],
        target=IncidentStatus.MITIGATING,
    )
    def mitigate(self) -> None:
        pass

    @transition(
        field=status,
        source=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATING],
        target=IncidentStatus.RESOLVED,
    )
    def resolve(self) -> None:
        pass

    @transition(field=status, source=IncidentStatus.RESOLVED, target=IncidentStatus.CLOSED)
    def close(self) -> None:
        pass

    @transition(field=status, source=IncidentStatus.RESOLVED, target=IncidentStatus.OPEN)
    def reopen(self) -> None:
        pass


NOTE_MAX_LENGTH = 10_000


class IncidentNote(models.Model):
    """A timeline entry written by a person (what they tried, what they saw). Never changed afterwards;
    a projection of its `controlplane.incident.note.added` event, whose seq it keeps."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="notes")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="incident_notes")
    author = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="incident_notes")
    text = models.TextField()
    created_at = models.DateTimeField()
    seq = models.BigIntegerField(
        unique=True, help_text="The seq of its controlplane.incident.note.added event."
    )

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["incident", "seq"])]

    def __str__(self) -> str:
        return f"note {self.seq} on {self.incident_id[:12]}"


class SilenceStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Silence(models.Model):
    """Matchers (service, name, labels) plus a time range; a matching signal observed inside the range
    is stored but suppressed (`Signal.suppressed_by`). Silencing a high or critical service needs
    approval (`incidents.silence`). `id` = SHA-256 of the canonical silence content."""

    id = models.CharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="silences")
    match_service = models.CharField(max_length=200, blank=True)
    match_name = models.CharField(max_length=200, blank=True)
    match_labels = models.JSONField(default=dict, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.TextField()
    created_by = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="silences")
    created_at = models.DateTimeField()
    status = FSMField(default=SilenceStatus.ACTIVE, choices=SilenceStatus.choices, protected=False)
    criticality = models.CharField(
        max_length=16, choices=Severity.choices, help_text="The highest severity the silence could hide."
    )
    approval = models.ForeignKey(
        "approvals.ApprovalRequest", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    content_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["tenant", "status", "starts_at", "ends_at"])]

    def __str__(self) -> str:
        return f"silence {self.id[:12]} ({self.status})"

    @transition(field=status, source=SilenceStatus.PENDING_APPROVAL, target=SilenceStatus.ACTIVE)
    def activate(self) -> None:
        pass

    @transition(field=status, source=SilenceStatus.PENDING_APPROVAL, target=SilenceStatus.REJECTED)
    def reject(self) -> None:
        pass

    @transition(
        field=status,
        source=[SilenceStatus.ACTIVE, SilenceStatus.PENDING_APPROVAL],
        target=SilenceStatus.EXPIRED,
    )
    def expire(self) -> None:
        pass
