"""The skills registry and its trust store.

- `Skill` / `ActionContract`: installed skills (bundles of action contracts) and the contracts the runtime
  resolves every plan step's action from. The runtime knows nothing of where a contract came from.
- `Publisher` / `PublisherKey`: the publisher trust store (TUF-like): each publisher's keys with validity
  windows and revocation, and its k-of-n signature threshold.
- `TrustRevision`: one counter, bumped by every trust-store change, so the run time can tell cheaply that an
  installed skill was verified against the trust store as it is now.

The built-in `core` skill is trusted as built-in (migration 0002, `skills.core`); every other skill is a
DSSE-signed manifest verified at install (docs/skills.md).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.policy.models import RiskTier


class SkillStatus(models.TextChoices):
    INSTALLED = "installed"
    DISABLED = "disabled"
    QUARANTINED = "quarantined"  # its signatures no longer meet the trust store (a key was revoked)
    SUPERSEDED = "superseded"  # a newer version of the same skill is installed


class Publisher(models.Model):
    """A skill publisher in the trust store: its keys must sign a skill, `threshold` of them at least."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    threshold = models.PositiveSmallIntegerField(default=1)
    builtin = models.BooleanField(default=False, help_text="The code's own publisher (core): has no keys.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PublisherKey(models.Model):
    """A public key of a publisher; `key_id` is the SHA-256 of its DER SubjectPublicKeyInfo."""

    publisher = models.ForeignKey(Publisher, on_delete=models.PROTECT, related_name="keys")
    key_id = models.CharField(max_length=64, unique=True)
    public_key_pem = models.TextField()
    scheme = models.CharField(max_length=32, help_text="ed25519 or ecdsa-sha2-nistp256")
    valid_from = models.DateTimeField(default=timezone.now)
    valid_until = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["publisher__name", "valid_from", "key_id"]

    def __str__(self) -> str:
        return f"{self.publisher.name}:{self.key_id[:12]}"

    def state_at(self, at, *, revoked_as_of=None) -> str:
        """`valid`, `revoked` or `expired` (outside its validity window) at the instant `at`; revocation is
        judged as of `revoked_as_of` (default `at`): a revocation stops what was signed before it too."""
        if self.revoked_at is not None and self.revoked_at <= (revoked_as_of or at):
            return "revoked"
        if at < self.valid_from or (self.valid_until is not None and at >= self.valid_until):
            return "expired"
        return "valid"


class TrustRevision(models.Model):
    """The trust store's revision (one row): bumped in the transaction of every trust-store change."""

    revision = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"trust store revision {self.revision}"


class Skill(models.Model):
    """A versioned bundle of action contracts from one publisher, as installed."""

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=32)
    publisher = models.CharField(max_length=100)
    trusted = models.BooleanField(default=False, help_text="Trusted as built-in (core): no envelope.")
    manifest = models.JSONField()
    manifest_hash = models.CharField(max_length=64)
    envelope = models.JSONField(null=True, blank=True, help_text="The DSSE envelope it was installed from.")
    envelope_hash = models.CharField(max_length=64, blank=True)
    signed_by = models.JSONField(default=list, blank=True, help_text="Key ids whose signatures verified.")
    verified_revision = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=SkillStatus.choices, default=SkillStatus.INSTALLED)
    status_codes = models.JSONField(default=list, blank=True)
    status_reason = models.TextField(blank=True)
    installed_at = models.DateTimeField(default=timezone.now)
    installed_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name", "version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="skill_unique_version")]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class ActionContract(models.Model):
    """What an action is: typed input and output (JSON Schema), a base risk tier and its executor."""

    skill = models.ForeignKey(Skill, on_delete=models.PROTECT, related_name="actions")
    name = models.CharField(max_length=100, help_text="e.g. noop.echo, http.webhook")
    version = models.CharField(max_length=32)
    description = models.TextField(blank=True)
    input_schema = models.JSONField()
    output_schema = models.JSONField()
    risk_tier = models.CharField(max_length=16, choices=RiskTier.choices)
    executor = models.CharField(max_length=100, help_text="The registered executor that performs the action.")
    # From the manifest: what the action may use and touch, and what undoes it (docs/skills.md).
    capabilities = models.JSONField(default=list, blank=True)
    blast_radius = models.JSONField(default=dict, blank=True)
    compensating_action = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["name", "version"]
        constraints = [
            models.UniqueConstraint(fields=["skill", "name", "version"], name="action_unique_skill_version")
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    def as_contract(self) -> dict:
        """The contract as plain data: what compilation hashes into the plan, and (not hashed: the compiler
        checks it, see `controlplane.runtime.compiler.UNHASHED`) the action's blast radius."""
        return {
            "name": self.name,
            "version": self.version,
            "risk_tier": self.risk_tier,
            "executor": self.executor,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "blast_radius": self.blast_radius,
        }


class InstallStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its approval
    INSTALLED = "installed"
    REJECTED = "rejected"  # the approvers said no, or the request expired or was cancelled
    REFUSED = "refused"  # approved, but no longer passed verification when it was to be installed


class InstallRequest(models.Model):
    """A verified envelope waiting for (or decided by) its `skills.install` approval, with the install
    review the approvers saw. Its id is the approval request's; the approval is bound to `envelope_hash`."""

    id = models.CharField(max_length=64, primary_key=True)
    envelope = models.JSONField()
    envelope_hash = models.CharField(max_length=64, db_index=True)
    manifest = models.JSONField()
    review = models.JSONField()
    reason = models.TextField()
    bundle = models.JSONField(default=dict, blank=True, help_text="path -> SHA-256 of the bundle checked.")
    requested_by = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=InstallStatus.choices, default=InstallStatus.PENDING)
    status_codes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    skill = models.ForeignKey(Skill, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"install {self.manifest.get('name')}@{self.manifest.get('version')} ({self.status})"
