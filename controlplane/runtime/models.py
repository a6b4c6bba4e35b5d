"""The governed action flow: intents, compiled plans and their steps, executions, step runs, kill switch.

Plans and steps are content-addressed (see `compiler.py`); executions and step runs are projections of
the ledger events the services append, so `replay` can rebuild and compare them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django_fsm import FSMField, transition

from controlplane.identity.models import Principal, Tenant
from controlplane.policy.models import PolicyVerdict


class IntentStatus(models.TextChoices):
    COMPILED = "compiled"
    REJECTED = "rejected"


class Intent(models.Model):
    """A submitted plan draft. The same principal and idempotency key always give the same intent."""

    id = models.CharField(
        primary_key=True, max_length=64, help_text="SHA-256 of principal and idempotency key."
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="intents")
    principal = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="intents")
    idempotency_key = models.CharField(max_length=255)
    draft = models.JSONField()
    status = models.CharField(max_length=16, choices=IntentStatus.choices)
    rejection = models.JSONField(
        default=dict, blank=True, help_text="code, detail, step, path of a refused draft"
    )
    plan = models.ForeignKey("Plan", null=True, blank=True, on_delete=models.PROTECT, related_name="intents")
    traceparent = models.CharField(max_length=55)
    trace_id = models.CharField(max_length=32, db_index=True)
    received_at = models.DateTimeField()

    # Not a column: `intent_submit` sets it on the instance it returns (False when the idempotency key
    # returned an intent submitted before), so the API can answer 201 or 200 without a second lookup.
    created: bool = False

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["principal", "idempotency_key"], name="intent_idempotent_per_principal"
            )
        ]

    def __str__(self) -> str:
        return f"intent {self.id[:12]} ({self.status})"


class Plan(models.Model):
    """A compiled plan: the id is the hash of its canonical form. Verdicts belong to executions: they
    depend on who asks and on the profile active at the time, not on the plan's content."""

    id = models.CharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="plans")
    goal = models.TextField()
    context = models.JSONField(default=dict)
    canonical = models.TextField()
    compiled_at = models.DateTimeField()

    class Meta:
        ordering = ["-compiled_at"]

    def __str__(self) -> str:
        return f"plan {self.id[:12]}"


class PlanStep(models.Model):
    """One step of a plan: its contract, inputs, dependencies and derived execution key."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField(help_text="Topological order, ties broken by key.")
    action = models.CharField(max_length=100)
    action_version = models.CharField(max_length=32)
    executor = models.CharField(max_length=100)
    contract_hash = models.CharField(max_length=64)
    base_tier = models.CharField(max_length=16)
    inputs = models.JSONField(default=dict)
    depends_on = models.JSONField(default=list)
    execution_key = models.CharField(max_length=32, unique=True)

    class Meta:
        ordering = ["plan", "position"]
        constraints = [models.UniqueConstraint(fields=["plan", "key"], name="plan_step_unique_key")]

    def __str__(self) -> str:
        return f"{self.plan_id[:12]}/{self.key}"


class ExecutionStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Execution(models.Model):
    """Running a plan for one intent. Its id is derived from the intent's, so it is deterministic."""

    id = models.CharField(primary_key=True, max_length=64)
    intent = models.OneToOneField(Intent, on_delete=models.PROTECT, related_name="execution")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="executions")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="executions")
    status = FSMField(default=ExecutionStatus.RUNNING, choices=ExecutionStatus.choices)
    trace_id = models.CharField(max_length=32, db_index=True)
    traceparent = models.CharField(max_length=55)
    environment = models.CharField(max_length=8)
    profile_name = models.CharField(max_length=100, blank=True)
    profile_version = models.PositiveIntegerField(null=True, blank=True)
    profile_hash = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    reason_codes = models.JSONField(default=list)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"execution {self.id[:12]} ({self.status})"

    @transition(field=status, source=ExecutionStatus.RUNNING, target=ExecutionStatus.COMPLETED)
    def complete(self) -> None:
        pass

    @transition(field=status, source=ExecutionStatus.RUNNING, target=ExecutionStatus.FAILED)
    def fail(self) -> None:
        pass

    @transition(field=status, source=ExecutionStatus.RUNNING, target=ExecutionStatus.CANCELLED)
    def cancel(self) -> None:
        pass


class StepStatus(models.TextChoices):
    PENDING = "pending"
    WAITING_APPROVAL = "waiting_approval"
    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    HELD = "held"


STEP_FINAL = {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.BLOCKED}


class StepRun(models.Model):
    """One step of one execution. `ready` means cleared to dispatch (verdict and approval satisfied)."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="step_runs")
    step = models.ForeignKey(PlanStep, on_delete=models.PROTECT, related_name="runs")
    status = FSMField(default=StepStatus.PENDING, choices=StepStatus.choices)
    approval = models.ForeignKey(
        "approvals.ApprovalRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="step_runs"
    )
    verdict = models.CharField(max_length=20, choices=PolicyVerdict.choices)
    enforced = models.BooleanField(default=True, help_text="False when dev mode only warned about a deny.")
    effective_tier = models.CharField(max_length=16)
    quorum = models.PositiveSmallIntegerField(default=0)
    decision = models.JSONField(default=dict, help_text="The full policy decision with its rule trail.")
    decision_hash = models.CharField(max_length=64)
    attempts = models.PositiveSmallIntegerField(default=0)
    attempt_log = models.JSONField(
        default=list, blank=True, help_text="One entry per attempt: when, result, reason code, retryable."
    )
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the step was cleared to go (the outbox entry was written)."
    )
    enqueued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the broker accepted the task; empty while it waits in the outbox.",
    )
    not_before = models.DateTimeField(null=True, blank=True, help_text="A retry waits until then (backoff).")
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A running step's worker renews this (heartbeat); the sweeper re-dispatches it once past.",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.JSONField(default=dict, blank=True)
    reason_codes = models.JSONField(default=list)
    held_gate = models.CharField(
        max_length=64,
        blank=True,
        help_text="The dispatch gate holding this step (controlplane.runtime.gates).",
    )
    held_code = models.CharField(max_length=64, blank=True, help_text="The hold's reason code.")
    held_detail = models.CharField(max_length=300, blank=True, help_text="The hold in words.")
    held_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "step__position"]
        constraints = [models.UniqueConstraint(fields=["execution", "step"], name="one_run_per_step")]
        indexes = [
            models.Index(fields=["status", "dispatched_at"]),
            models.Index(fields=["status", "lease_expires_at"]),
            models.Index(fields=["status", "held_gate"]),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id[:12]}/{self.step.key} ({self.status})"

    @transition(field=status, source=StepStatus.PENDING, target=StepStatus.WAITING_APPROVAL)
    def wait_for_approval(self) -> None:
        pass

    @transition(
        field=status, source=[StepStatus.PENDING, StepStatus.WAITING_APPROVAL], target=StepStatus.READY
    )
    def clear(self) -> None:
        pass

    @transition(field=status, source=StepStatus.READY, target=StepStatus.RUNNING)
    def start(self) -> None:
        pass

    @transition(field=status, source=StepStatus.RUNNING, target=StepStatus.COMPLETED)
    def complete(self) -> None:
        pass

    @transition(field=status, source=StepStatus.READY, target=StepStatus.HELD)
    def hold(self) -> None:
        """A dispatch gate holds the cleared step (controlplane.runtime.gates)."""

    @transition(field=status, source=StepStatus.HELD, target=StepStatus.READY)
    def resume(self) -> None:
        """The hold cleared (or a person chose to resume): the step is cleared to dispatch again."""

    @transition(field=status, source=StepStatus.RUNNING, target=StepStatus.READY)
    def retry(self) -> None:
        """A retryable failure, or a worker that died (lease expired): the step goes back to the queue."""

    @transition(field=status, source=[StepStatus.READY, StepStatus.RUNNING], target=StepStatus.FAILED)
    def fail(self) -> None:
        pass

    @transition(
        field=status,
        source=[StepStatus.PENDING, StepStatus.WAITING_APPROVAL, StepStatus.READY, StepStatus.HELD],
        target=StepStatus.BLOCKED,
    )
    def block(self) -> None:
        pass

    @transition(
        field=status,
        source=[StepStatus.PENDING, StepStatus.WAITING_APPROVAL, StepStatus.READY, StepStatus.HELD],
        target=StepStatus.CANCELLED,
    )
    def cancel(self) -> None:
        pass


class KillSwitchScope(models.TextChoices):
    GLOBAL = "global"
    TENANT = "tenant"
    ACTION = "action"


class KillSwitch(models.Model):
    """An engaged switch blocks every new dispatch in its scope (KILL_SWITCH_ENGAGED)."""

    scope = models.CharField(max_length=8, choices=KillSwitchScope.choices)
    target = models.CharField(
        max_length=100, blank=True, help_text="tenant slug or action name; empty for global"
    )
    engaged = models.BooleanField(default=True)
    reason = models.TextField()
    changed_by = models.CharField(max_length=255)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["scope", "target"]
        constraints = [
            models.UniqueConstraint(fields=["scope", "target"], name="one_switch_per_scope"),
            models.CheckConstraint(
                condition=Q(scope="global", target="") | (~Q(scope="global") & ~Q(target="")),
                name="kill_switch_target_matches_scope",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.target or '*'} {'engaged' if self.engaged else 'released'}"


class Runner(models.Model):
    """A registered runner: where `http.webhook` steps are POSTed, signed with the runner's secret.

    A runner belongs to one tenant (only that tenant's steps may target it), or, with no tenant, is a
    shared runner of the platform scope that a tenant's steps may target only once a platform principal
    has granted it to that tenant (`RunnerGrant`). Names are unique across the installation, so a step's
    `inputs.runner` names exactly one runner.

    The HMAC secret itself never enters the database (nor the ledger or logs): `secret_env` names the
    environment variable that holds it, `CONTROLPLANE_RUNNER_SECRET` when empty.
    """

    name = models.CharField(max_length=63, unique=True, help_text="What a step's `inputs.runner` names.")
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="runners",
        help_text="The owning tenant; empty for a shared (platform) runner, used through grants.",
    )
    url = models.URLField(max_length=500)
    secret_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Environment variable holding the whsec_ secret (CONTROLPLANE_RUNNER_SECRET[_*]).",
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Connect and read timeout; CONTROLPLANE_RUNNER_TIMEOUT_SECONDS if empty.",
    )
    enabled = models.BooleanField(default=True)
    changed_by = models.CharField(max_length=255)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"runner {self.name} ({self.url})"


class RunnerGrant(models.Model):
    """A shared runner a platform principal has granted to a tenant: its steps may target it."""

    runner = models.ForeignKey(Runner, on_delete=models.CASCADE, related_name="grants")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="runner_grants")
    granted_by = models.CharField(max_length=255)
    granted_at = models.DateTimeField()

    class Meta:
        ordering = ["runner", "tenant"]
        constraints = [
            models.UniqueConstraint(fields=["runner", "tenant"], name="one_grant_per_runner_and_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.runner.name} -> {self.tenant.slug}"
