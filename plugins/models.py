"""Plugins: external components the control plane depends on, supervised from runtime evidence only.

- `Plugin`: a registered manifest (per tenant, or shared when `tenant` is empty), the service principal it
  authenticates as, its Ed25519 heartbeat key, and the supervisor's state machine. The row also holds the
  *evidence summary* the supervisor decides on (last heartbeat, restarts seen, signature violations,
  probe results, back-off), written by heartbeat ingest and the probes: heartbeats themselves are not rows
  and not ledger events (a fleet would flood the chain); a rolling digest of them is ledgered periodically.
- `PluginProvision`: what a plugin provides (a runner name, an executor), so the runtime's dispatch gate
  finds the plugin behind a step with one indexed read.
- `ReviewItem`: the quarantine review queue (low-severity degradations an operator quarantines or
  dismisses, with a reason).

Transitions hold only their guard and the state change; `plugins.services` locks, transitions, saves and
ledgers the transition with the evidence it was decided on.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django_fsm import FSMField, transition

from controlplane.identity.models import Principal, Tenant


class PluginState(models.TextChoices):
    UNKNOWN = "unknown"  # registered (or released), no evidence yet: never dispatchable
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRASHED = "crashed"
    BLOCKED = "blocked"  # a dependency is not healthy
    QUARANTINED = "quarantined"  # terminal until released through an approval


class PluginKind(models.TextChoices):
    RUNNER = "runner"
    SIGNAL_SOURCE = "signal_source"
    CHAT_BRIDGE = "chat_bridge"
    ADVISORY = "advisory"


LIVE = [
    PluginState.UNKNOWN,
    PluginState.HEALTHY,
    PluginState.DEGRADED,
    PluginState.CRASHED,
    PluginState.BLOCKED,
]


class Plugin(models.Model):
    """A registered plugin, its manifest, its credentials and its supervised state."""

    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="plugins",
        help_text="The owning tenant; empty for a platform-shared plugin.",
    )
    name = models.CharField(max_length=63, unique=True, help_text="Unique across the installation.")
    version = models.CharField(max_length=32)
    kind = models.CharField(max_length=16, choices=PluginKind.choices)
    manifest = models.JSONField()
    manifest_hash = models.CharField(max_length=64)
    principal = models.ForeignKey(
        Principal,
        on_delete=models.PROTECT,
        related_name="plugins",
        help_text="The service principal whose API token the plugin's heartbeats authenticate with.",
    )
    public_key = models.CharField(max_length=64, help_text="Base64 Ed25519 key its heartbeats are signed by.")
    heartbeat_interval_seconds = models.PositiveIntegerField()
    health_url = models.URLField(blank=True)
    control_url = models.URLField(blank=True)
    tuning = models.JSONField(default=dict, help_text="The effective supervision parameters.")
    registered_by = models.CharField(max_length=200)
    registered_at = models.DateTimeField(default=timezone.now)

    state = FSMField(default=PluginState.UNKNOWN, choices=PluginState.choices, protected=False)
    state_codes = models.JSONField(default=list, blank=True)
    state_detail = models.CharField(max_length=300, blank=True)
    state_since = models.DateTimeField(default=timezone.now)
    severity = models.CharField(max_length=16, blank=True, help_text="Of the quarantine: low .. critical.")
    quarantine_event = models.CharField(
        max_length=64,
        blank=True,
        help_text="Hash of the ledger event that quarantined it (release binds it).",
    )

    # --- evidence (what the supervisor decides on) ---
    evidence_since = models.DateTimeField(
        default=timezone.now, help_text="Evidence older than this (registration, release) does not count."
    )
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_instance = models.CharField(max_length=100, blank=True)
    last_sequence = models.BigIntegerField(default=0)
    last_version = models.CharField(max_length=32, blank=True)
    last_checks = models.JSONField(default=dict, blank=True)
    last_reported = models.JSONField(default=dict, blank=True, help_text="restart_count, backoff (its own)")
    restarts = models.JSONField(default=list, blank=True, help_text="Times an instance id changed (window).")
    violations = models.PositiveIntegerField(default=0, help_text="Refused heartbeats since evidence_since.")
    last_violation = models.JSONField(default=dict, blank=True)
    probes = models.JSONField(default=list, blank=True, help_text="The last probe results, newest last.")
    backoff_seconds = models.PositiveIntegerField(default=0)
    next_restart_at = models.DateTimeField(null=True, blank=True)
    restart_requests = models.PositiveIntegerField(default=0)
    healthy_since = models.DateTimeField(null=True, blank=True)
    blocked_since = models.DateTimeField(null=True, blank=True)
    supervised_at = models.DateTimeField(null=True, blank=True)

    # --- the heartbeat digest accumulator (ledgered periodically, then reset) ---
    digest_count = models.PositiveIntegerField(default=0)
    digest_first_at = models.DateTimeField(null=True, blank=True)
    digest_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["tenant", "state"])]

    def __str__(self) -> str:
        return f"plugin {self.name} ({self.state})"

    @property
    def scope(self) -> str:
        return self.tenant.slug if self.tenant_id else ""

    # The supervisor decides the target from evidence; these hold only which moves exist.
    @transition(field=state, source=LIVE, target=PluginState.HEALTHY)
    def mark_healthy(self) -> None:
        pass

    @transition(field=state, source=LIVE, target=PluginState.DEGRADED)
    def mark_degraded(self) -> None:
        pass

    @transition(field=state, source=LIVE, target=PluginState.CRASHED)
    def mark_crashed(self) -> None:
        pass

    @transition(field=state, source=LIVE, target=PluginState.BLOCKED)
    def mark_blocked(self) -> None:
        pass

    @transition(field=state, source=LIVE, target=PluginState.QUARANTINED)
    def quarantine(self) -> None:
        pass

    @transition(field=state, source=PluginState.QUARANTINED, target=PluginState.UNKNOWN)
    def release(self) -> None:
        """Released through an approval: back to unknown, needing fresh evidence."""


class ProvisionKind(models.TextChoices):
    RUNNER = "runner"
    EXECUTOR = "executor"
    ACTION = "action"


class PluginProvision(models.Model):
    """One thing a plugin provides: a runner name (`http.webhook` steps' `inputs.runner`) or an executor."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="provisions")
    kind = models.CharField(max_length=16, choices=ProvisionKind.choices)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["plugin", "kind", "name"]
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="one_plugin_per_provision")]

    def __str__(self) -> str:
        return f"{self.plugin.name} provides {self.kind} {self.name}"


class ReviewStatus(models.TextChoices):
    OPEN = "open"
    QUARANTINED = "quarantined"
    DISMISSED = "dismissed"


class ReviewItem(models.Model):
    """A low-severity degradation waiting for an operator: quarantine the plugin or dismiss, with a reason."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="review_items")
    code = models.CharField(max_length=64)
    detail = models.CharField(max_length=300)
    severity = models.CharField(max_length=16, default="low")
    evidence = models.JSONField(help_text="The evidence the supervisor decided on (what the reviewer sees).")
    evidence_hash = models.CharField(max_length=64)
    status = FSMField(default=ReviewStatus.OPEN, choices=ReviewStatus.choices, protected=False)
    opened_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["opened_at", "id"]
        indexes = [models.Index(fields=["status", "opened_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["plugin", "code"],
                condition=models.Q(status="open"),
                name="one_open_review_per_plugin_and_code",
            )
        ]

    def __str__(self) -> str:
        return f"review {self.pk}: {self.plugin.name} {self.code} ({self.status})"

    @transition(field=status, source=ReviewStatus.OPEN, target=ReviewStatus.QUARANTINED)
    def decide_quarantine(self) -> None:
        pass

    @transition(field=status, source=ReviewStatus.OPEN, target=ReviewStatus.DISMISSED)
    def dismiss(self) -> None:
        pass
