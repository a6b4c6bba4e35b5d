"""Policy profiles: versioned, immutable content that maps risk tiers to modes, plus raise and deny rules.

A profile's content never changes once saved (like a TUF metadata version): every change is a new
version row. Only its status moves (draft -> active -> retired, and a retired version may be activated
again), through `services.profile_activate`. At most one profile is active per environment.

The hard invariant (high and critical steps are never autonomous; critical needs quorum >= 2) is held
three times: by the content validation (service, model save, admin form), and by a database check
constraint. PostgreSQL also refuses, by trigger, any UPDATE of a profile's identity or content and any
DELETE (migration 0003).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact, In
from django.utils import timezone

from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy.content import content_hash, profile_content_validate
from controlplane.policy.evaluation import ProfileContent


class RiskTier(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Mode(models.TextChoices):
    AUTONOMOUS = "autonomous"
    ASSIST = "assist"
    BLOCKED = "blocked"


class PolicyVerdict(models.TextChoices):
    ALLOW = "allow"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"


class Environment(models.TextChoices):
    DEV = "dev"
    STAGE = "stage"
    PROD = "prod"


class ProfileStatus(models.TextChoices):
    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


# The only fields a saved profile may change (through services.profile_activate).
STATUS_FIELDS = ("status", "activated_at", "retired_at")


def _mode_of(tier: str) -> Coalesce:
    """The tier's mode as text, '' when absent (a bare JSON lookup would be NULL, which a CHECK passes)."""
    return Coalesce(KT(f"content__tiers__{tier}__mode"), Value(""), output_field=models.TextField())


# The invariant at the database: no row whose content makes high or critical autonomous (or leaves them
# without a mode), or gives an assist critical tier no quorum or one below 2, can be written.
NEVER_AUTONOMOUS_CHECK = (
    Q(In(_mode_of("high"), ["assist", "blocked"]))
    & Q(In(_mode_of("critical"), ["assist", "blocked"]))
    & (
        Q(Exact(_mode_of("critical"), "blocked"))
        | Q(content__tiers__critical__has_key="quorum", content__tiers__critical__quorum__gte=2)
    )
)


class PolicyProfile(models.Model):
    """One immutable version of a named policy profile for one environment."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    environment = models.CharField(max_length=8, choices=Environment.choices)
    content = models.JSONField()
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the RFC 8785 canonical content.")
    status = models.CharField(max_length=8, choices=ProfileStatus.choices, default=ProfileStatus.DRAFT)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="policy_profile_unique_version"),
            models.UniqueConstraint(
                fields=["environment"],
                condition=Q(status="active"),
                name="policy_profile_one_active_per_environment",
            ),
            models.CheckConstraint(
                condition=NEVER_AUTONOMOUS_CHECK,
                name="policy_profile_high_critical_never_autonomous",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}@v{self.version} ({self.environment}, {self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A new row must hold valid content with its true hash; an existing row only changes status."""
        if self._state.adding:
            profile_content_validate(self.content)
            if self.content_hash != content_hash(self.content):
                raise ControlPlaneError(
                    "POLICY_PROFILE_INVALID", "content_hash is not the hash of the content"
                )
        else:
            update_fields = kwargs.get("update_fields")
            if update_fields is None or not set(update_fields) <= set(STATUS_FIELDS):
                raise ControlPlaneError(
                    "POLICY_PROFILE_IMMUTABLE", f"profile {self.ref} is immutable; create a new version"
                )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ControlPlaneError("POLICY_PROFILE_IMMUTABLE", "profiles are kept for replay; retire them")

    def clean(self) -> None:
        """Validate the content for forms: POLICY_PROFILE_INVALID, naming the path at fault."""
        try:
            profile_content_validate(self.content)
        except ControlPlaneError as exc:
            raise ValidationError({"content": f"{exc.code}: {exc.detail}"}) from exc

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def as_content(self) -> ProfileContent:
        """The parsed content for evaluation; refuses a row whose content no longer matches its hash."""
        parsed = ProfileContent.from_content(
            self.content, name=self.name, version=self.version, environment=self.environment
        )
        if parsed.ref.content_hash != self.content_hash:
            raise ControlPlaneError(
                "POLICY_PROFILE_HASH_MISMATCH", f"stored content of {self.ref} does not match its hash"
            )
        return parsed
