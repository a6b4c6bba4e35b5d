"""Governance state: the runtime enforcement toggle and the enforcement counters.

The ledger is the authority: the toggle row is the projection of `controlplane.governance.enforcement.
changed` events (written in the same transaction), validation and preflight results live only on the
ledger (`controlplane.governance.validation.completed`, `...preflight.completed`). The counters are
operational metrics (refusals and would-have-refused per day, code and tenant), not decisions.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class EnforcementMode(models.TextChoices):
    WARN = "warn"
    ENFORCE = "enforce"


class EnforcementToggle(models.Model):
    """The one rollback toggle, platform-wide: `warn` turns every enforce-mode check to warn. Empty mode:
    unset, the environment variable CONTROLPLANE_ENFORCEMENT decides."""

    key = models.CharField(max_length=32, primary_key=True, default="enforcement")
    mode = models.CharField(max_length=8, choices=EnforcementMode.choices, blank=True)
    reason = models.TextField(blank=True)
    changed_by = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    event_seq = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"enforcement={self.mode or 'unset'}"


class Outcome(models.TextChoices):
    REFUSED = "refused"
    WOULD_REFUSE = "would_refuse"


class EnforcementCount(models.Model):
    """How many times a gated check refused (enforce) or would have refused (warn), per day, dimension,
    reason code and tenant ('' for the platform)."""

    day = models.DateField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    dimension = models.CharField(max_length=32)
    code = models.CharField(max_length=64)
    tenant = models.CharField(max_length=100, blank=True)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "outcome", "dimension", "code", "tenant"], name="governance_count_unique"
            )
        ]
        indexes = [models.Index(fields=["outcome", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.outcome} {self.code} {self.tenant or '(platform)'}: {self.count}"
