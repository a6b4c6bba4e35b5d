"""Approval requests and decisions: quorum, separation of duties, and binding to exact content.

The approvals app knows nothing of what it approves. A domain app registers a subject kind
(`runtime.step`, `policy.activate`, ...) with a resolver (see `approvals.registry`); a request names the
subject, the content hash of exactly what is to be approved, and the quorum its policy demanded.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django_fsm import FSMField, transition

from controlplane.identity.models import Principal, Tenant


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ApprovalVote(models.TextChoices):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalRequest(models.Model):
    """A request for people to consent to one exact piece of content (`content_hash`).

    Transitions hold only their guards; `approvals.services` locks the row, runs them, saves and ledgers.
    """

    id = models.CharField(primary_key=True, max_length=64, help_text="SHA-256 of subject and content hash.")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="approval_requests")
    subject_kind = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=128)
    content_hash = models.CharField(max_length=64)
    summary = models.JSONField(
        default=dict, help_text="What the console shows: exactly what is being approved."
    )
    risk_tier = models.CharField(max_length=16)
    quorum = models.PositiveSmallIntegerField()
    reason_codes = models.JSONField(default=list, help_text="Why approval is needed (policy reason codes).")
    requested_by = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="approval_requests")
    status = FSMField(default=ApprovalStatus.PENDING, choices=ApprovalStatus.choices)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalation_ladder = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True, help_text="A granted approval is used once.")

    # The W3C trace context of what is being approved, so its events join that action's trace.
    traceparent = models.CharField(max_length=55, blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["subject_kind", "subject_id"]),
            # The console queue: one tenant's pending requests, oldest first, counted and paged by index.
            models.Index(fields=["tenant", "status", "created_at", "id"], name="approvals_queue_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.subject_kind}:{self.subject_id} ({self.status})"

    def approvals_count(self) -> int:
        return self.decisions.filter(decision=ApprovalVote.APPROVE).values("approver").distinct().count()

    def quorum_reached(self) -> bool:
        return self.approvals_count() >= self.quorum

    @transition(
        field=status,
        source=ApprovalStatus.PENDING,
        target=ApprovalStatus.APPROVED,
        conditions=[quorum_reached],
    )
    def approve(self) -> None:
        self.decided_at = timezone.now()

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.REJECTED)
    def reject(self) -> None:
        self.decided_at = timezone.now()

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.EXPIRED)
    def expire(self) -> None:
        self.decided_at = timezone.now()

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.CANCELLED)
    def cancel(self) -> None:
        self.decided_at = timezone.now()


class ApprovalDecision(models.Model):
    """One person's decision on a request, with the reason they gave. Never changed afterwards."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.PROTECT, related_name="decisions")
    approver = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="approval_decisions")
    decision = models.CharField(max_length=8, choices=ApprovalVote.choices)
    reason = models.TextField()
    content_hash = models.CharField(max_length=64)
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["decided_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="one_decision_per_approver")
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision} {self.request_id}"
