"""The kill switch: engaging it holds every new dispatch (checked again by the worker before the effect).

The switch is the first dispatch gate (`killswitch_gate`, registered first by the app): a cleared step it
covers is `held` with KILL_SWITCH_ENGAGED (its execution keeps running), not failed. A step already
running finishes and is recorded. The gate has no `auto_resume`: releasing the switch resumes nothing by
itself. The person releasing chooses, for what the switch held (`held`): `resume` it, `cancel` its
executions, or `decide` one by one later (`killswitch_held_decide`, per execution) -- each a ledgered act
with the person's reason ("automation never surprises humans").

Which switch covers a step is a read: `controlplane.runtime.selectors.killswitch_engaged_for`.

Who may turn which switch (checked here, so the API, the console and the CLI agree): a tenant principal
with `killswitch.manage` turns its own tenant's switch only; the global switch, action-wide switches and
other tenants' switches are installation-wide acts that need `platform.killswitch.manage`
(PLATFORM_SCOPE_REQUIRED). A string actor is the installation itself (a shell user) and is not checked.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.identity.scope import platform_authorize
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.batch import ledger_deferred
from controlplane.ledger.services import ledger_append
from controlplane.runtime.gates import DispatchGate, Hold
from controlplane.runtime.models import (
    Execution,
    ExecutionStatus,
    KillSwitch,
    KillSwitchScope,
    StepRun,
    StepStatus,
)
from controlplane.runtime.selectors import (
    KILLSWITCH_GATE,
    killswitch_engaged_for,
    killswitch_held_runs,
)
from controlplane.runtime.services.dispatch import step_resume
from controlplane.runtime.services.steps import execution_cancel, step_run_lock

PLATFORM_KILLSWITCH = "platform.killswitch.manage"
TENANT_KILLSWITCH = "killswitch.manage"

# What becomes of the work a released switch held: the person releasing it chooses.
HELD_RESUME, HELD_CANCEL, HELD_DECIDE = "resume", "cancel", "decide"
HELD_CHOICES = (HELD_RESUME, HELD_CANCEL, HELD_DECIDE)


def _killswitch_check(run: StepRun) -> Hold | None:
    switch = killswitch_engaged_for(tenant=run.execution.tenant.slug, action=run.step.action)
    if switch is None:
        return None
    where = f"{switch.scope} {switch.target or '*'}"
    return Hold(
        code="KILL_SWITCH_ENGAGED",
        detail=f"held by the kill switch ({where}: {switch.reason})",
        data={"scope": switch.scope, "target": switch.target},
    )


# Registered first by the app (it wins over every other gate); only a person's act resumes what it held.
killswitch_gate = DispatchGate(name=KILLSWITCH_GATE, check=_killswitch_check, auto_resume=False)


def killswitch_authorize(*, actor: Principal | str, scope: str, target: str) -> None:
    """Refuse unless the actor may turn the switch (scope, target); no database write either way."""
    if not isinstance(actor, Principal):
        return
    if scope == KillSwitchScope.TENANT and target == actor.tenant.slug:
        if actor.has_capability(TENANT_KILLSWITCH) or actor.has_capability(PLATFORM_KILLSWITCH):
            return
        raise ControlPlaneError("CAPABILITY_MISSING", f"{actor.ref} lacks {TENANT_KILLSWITCH!r}")
    where = "another tenant's switch" if scope == KillSwitchScope.TENANT else f"the {scope} switch"
    platform_authorize(actor=actor, capability=PLATFORM_KILLSWITCH, detail=f"{where} is installation-wide")


@transaction.atomic
@ledger_deferred()
def killswitch_set(
    *,
    scope: str,
    target: str = "",
    engaged: bool,
    reason: str,
    actor: Principal | str,
    at: datetime | None = None,
    held: str = HELD_DECIDE,
) -> KillSwitch:
    """Engage or release a kill switch; every change is a ledgered, reasoned act.

    `actor` is the principal acting (its scope is checked: see the module) or, for the installation
    itself, a string naming it. On release, `held` says what becomes of the steps this switch held:
    `resume` them (those another engaged switch still covers stay held), `cancel` their executions, or
    `decide` one by one (they stay held; the default: nothing runs that nobody chose to run). The switch
    returned carries `held_result`, the counts of what was done. A refusal writes nothing.

    The events are appended together at the end (`ledger_deferred`): the step runs and executions a
    release resumes or cancels are locked before the chain, in the one lock order (see `steps.py`).
    """
    if scope not in KillSwitchScope.values:
        raise ControlPlaneError(
            "VALIDATION_FAILED", f"scope must be one of {', '.join(KillSwitchScope.values)}"
        )
    if (scope == KillSwitchScope.GLOBAL) != (target == ""):
        raise ControlPlaneError(
            "VALIDATION_FAILED", "a global switch has no target; tenant and action ones need one"
        )
    if held not in HELD_CHOICES:
        raise ControlPlaneError(
            "KILL_SWITCH_HELD_CHOICE_INVALID", f"held must be one of {', '.join(HELD_CHOICES)}"
        )
    killswitch_authorize(actor=actor, scope=scope, target=target)
    if not reason or not reason.strip():
        raise ControlPlaneError(
            "KILL_SWITCH_REASON_REQUIRED", "engaging or releasing the kill switch needs a reason"
        )
    actor_ref = actor.ref if isinstance(actor, Principal) else actor
    at = at or timezone.now()
    switch, _ = KillSwitch.objects.select_for_update().update_or_create(
        scope=scope,
        target=target,
        defaults={"engaged": engaged, "reason": reason.strip(), "changed_by": actor_ref, "changed_at": at},
    )
    data = {"scope": scope, "target": target, "reason": reason.strip()}
    ledger_append(
        type="controlplane.killswitch.engaged" if engaged else "controlplane.killswitch.released",
        subject=f"killswitch/{scope}/{target or '*'}",
        data=data if engaged else {**data, "held": held},
        tenant=target if scope == KillSwitchScope.TENANT else "",
        actor=actor_ref,
        time=at,
        reason_codes=["KILL_SWITCH_ENGAGED"] if engaged else [],
    )
    switch.held_result = {"resumed": 0, "cancelled": 0, "still_held": 0}
    if not engaged:
        switch.held_result = _held_settle(
            runs=killswitch_held_runs(scope=scope, target=target),
            choice=held,
            actor=actor,
            reason=reason.strip(),
            at=at,
        )
    return switch


def _held_settle(
    *, runs: QuerySet[StepRun], choice: str, actor: Principal | str, reason: str, at: datetime
) -> dict[str, int]:
    """Do what the person chose with these held steps; the counts of what was done and what still waits."""
    counts = {"resumed": 0, "cancelled": 0, "still_held": 0}
    actor_ref = actor.ref if isinstance(actor, Principal) else actor
    if choice == HELD_CANCEL:
        for execution_id in sorted(set(runs.values_list("execution_id", flat=True))):
            execution_cancel(execution=Execution.objects.get(pk=execution_id), actor=actor, reason=reason)
            counts["cancelled"] += 1
        return counts
    for step_run_id in list(runs.order_by("held_since", "pk").values_list("pk", flat=True)):
        if choice == HELD_RESUME:
            run, _ = step_run_lock(step_run_id=step_run_id)
            if step_resume(run=run, actor=actor_ref, reason=reason, at=at):
                counts["resumed"] += 1
                continue
        counts["still_held"] += 1
    return counts


@transaction.atomic
@ledger_deferred()
def killswitch_held_decide(
    *, execution: Execution, decision: str, reason: str, actor: Principal | str
) -> dict[str, int]:
    """Resume or cancel one execution the kill switch held (one by one, after a release with `decide`).

    Who may: the same people who may turn that execution's tenant switch (`killswitch_authorize`: its own
    tenant with `killswitch.manage`, any tenant with `platform.killswitch.manage`). Resuming is refused
    while a switch still covers one of its held steps (KILL_SWITCH_ENGAGED); cancelling is allowed then
    too. A refusal writes nothing.
    """
    if decision not in (HELD_RESUME, HELD_CANCEL):
        raise ControlPlaneError("KILL_SWITCH_HELD_CHOICE_INVALID", "decide resume or cancel")
    killswitch_authorize(actor=actor, scope=KillSwitchScope.TENANT, target=execution.tenant.slug)
    if not reason or not reason.strip():
        raise ControlPlaneError("KILL_SWITCH_REASON_REQUIRED", "deciding on held work needs a reason")
    runs = StepRun.objects.filter(
        execution=execution,
        status=StepStatus.HELD,
        held_gate=KILLSWITCH_GATE,
        execution__status=ExecutionStatus.RUNNING,
    ).select_related("step")
    held = list(runs)
    if not held:
        raise ControlPlaneError("KILL_SWITCH_NOTHING_HELD", f"execution {execution.pk[:12]} holds nothing")
    if decision == HELD_RESUME:
        for run in held:
            switch = killswitch_engaged_for(tenant=execution.tenant.slug, action=run.step.action)
            if switch is not None:
                raise ControlPlaneError(
                    "KILL_SWITCH_ENGAGED",
                    f"the {switch.scope} {switch.target or '*'} switch still holds step {run.step.key}",
                )
    return _held_settle(runs=runs, choice=decision, actor=actor, reason=reason.strip(), at=timezone.now())
