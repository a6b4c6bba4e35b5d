"""The skills registry: skills (bundles of action contracts) and the contracts the runtime executes.

The runtime resolves every plan step's action here and knows nothing of where a contract came from.
Built-in actions ship as the trusted `core` skill (migration 0002); signed third-party skills, the
publisher trust store and compatibility checks arrive with their own issue and land in these tables.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.policy.models import RiskTier


class SkillStatus(models.TextChoices):
    INSTALLED = "installed"
    DISABLED = "disabled"


class Skill(models.Model):
    """A versioned bundle of action contracts from one publisher."""

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=32)
    publisher = models.CharField(max_length=100)
    trusted = models.BooleanField(default=False, help_text="Core skills are trusted by construction.")
    manifest = models.JSONField()
    manifest_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=SkillStatus.choices, default=SkillStatus.INSTALLED)
    installed_at = models.DateTimeField(default=timezone.now)

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

    class Meta:
        ordering = ["name", "version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="action_unique_version")]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    def as_contract(self) -> dict:
        """The contract as plain data: what compilation hashes into the plan."""
        return {
            "name": self.name,
            "version": self.version,
            "risk_tier": self.risk_tier,
            "executor": self.executor,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        }
