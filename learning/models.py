"""Learning: outcomes (a projection of the ledger), anti-gaming findings, calibration reports, proposals.

Nothing here is authoritative: outcomes are rebuilt from the chain (`learning.derive`), reports are
recomputed by the replayer, and proposals change nothing until approved through the owning app.
"""

from __future__ import annotations

from django.db import models

from controlplane.identity.models import Tenant


class OutcomeKind(models.TextChoices):
    EXECUTION = "execution"
    INCIDENT = "incident"


class Outcome(models.Model):
    """What a finished execution or a closed incident came to, with its reward under a reward model."""

    id = models.CharField(primary_key=True, max_length=64, help_text="SHA-256 of kind and subject.")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="learning_outcomes")
    kind = models.CharField(max_length=16, choices=OutcomeKind.choices)
    subject = models.CharField(max_length=64, help_text="The execution or incident id.")
    actor = models.CharField(max_length=255, help_text="The acting agent, or the detection rule.")
    result = models.CharField(max_length=16)
    finished_at = models.CharField(max_length=40)
    facts = models.JSONField(help_text="What the ledger proves about it (learning.derive.OutcomeFacts).")
    quality_bp = models.PositiveIntegerField(default=0)
    provenance_bp = models.PositiveIntegerField(default=0)
    reward_bp = models.PositiveIntegerField(default=0)
    excluded = models.BooleanField(default=False, help_text="A hard-block finding keeps it out of rewards.")
    penalised = models.BooleanField(default=False, help_text="An open review finding applies its penalty.")
    reward_model = models.CharField(max_length=32)
    profile_hash = models.CharField(max_length=64)
    last_seq = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["tenant", "-last_seq"]
        indexes = [models.Index(fields=["tenant", "kind", "actor"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject[:12]}: {self.result}"


class FindingSeverity(models.TextChoices):
    BLOCK = "block"  # high confidence: the outcomes are excluded at once
    REVIEW = "review"  # uncertain: a soft penalty until a person decides


class FindingStatus(models.TextChoices):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class Finding(models.Model):
    """An anti-gaming finding with its evidence; each one is a ledger event, and so is its decision."""

    fingerprint = models.CharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="learning_findings")
    code = models.CharField(max_length=64)
    severity = models.CharField(max_length=8, choices=FindingSeverity.choices)
    status = models.CharField(max_length=12, choices=FindingStatus.choices, default=FindingStatus.OPEN)
    principal = models.CharField(max_length=255, blank=True, help_text="Whose behaviour it is about.")
    outcome = models.CharField(max_length=64, blank=True)
    evidence = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    decided_by = models.CharField(max_length=255, blank=True)
    decided_reason = models.CharField(max_length=500, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "status"])]

    def __str__(self) -> str:
        return f"{self.code} {self.principal} ({self.status})"


class CalibrationReport(models.Model):
    """A calibration report: a pure function of the chain up to `until_seq` (its hash says so)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="learning_reports")
    content_hash = models.CharField(max_length=64)
    until_seq = models.PositiveBigIntegerField()
    profile_hash = models.CharField(max_length=64)
    content = models.JSONField()
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=255)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "content_hash"], name="one_report_per_tenant_and_hash")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} report {self.content_hash[:12]} @ {self.until_seq}"


class ProposalStatus(models.TextChoices):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"


class Proposal(models.Model):
    """A change the loop suggests (never applies): earned autonomy for an (agent, action) pair."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="learning_proposals")
    kind = models.CharField(max_length=32)
    key = models.CharField(max_length=300, help_text="What it is about, e.g. `acme/deploy-bot noop.echo`.")
    status = models.CharField(max_length=12, choices=ProposalStatus.choices, default=ProposalStatus.PROPOSED)
    content = models.JSONField(help_text="Each precondition with its evidence, the report it came from.")
    report_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "key", "report_hash"], name="one_proposal_per_report"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} ({self.status})"
