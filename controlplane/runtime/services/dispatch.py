"""Dispatch and the outbox: what goes out to a worker, what is held, and when an execution ends.

`execution_advance` dispatches every cleared step whose dependencies completed and finishes the execution
when all its steps are final. The step row is the outbox: `dispatched_at` is written in the transaction
that clears the step, `enqueued_at` once the broker accepted the task (`step_publish`, after commit). When
the broker is down the request still commits and the step waits in the outbox for the sweeper.

This is the only module of the runtime's services that talks to Celery.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from approvals import services as approvals
from approvals.models import ApprovalStatus
from controlplane.ledger.services import ledger_append
from controlplane.runtime.gates import DispatchGate, Hold, dispatch_gate, dispatch_hold
from controlplane.runtime.models import Execution, ExecutionStatus, StepRun, StepStatus

logger = logging.getLogger(__name__)

# Publishing waits at most about a second for an unreachable broker; the outbox covers the rest.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


def step_block(*, run: StepRun, codes: list[str], at: datetime) -> None:
    """Block a step for good with its reason codes (the caller advances the execution)."""
    run.block()
    run.reason_codes = list(dict.fromkeys([*run.reason_codes, *codes]))
    run.finished_at = at
    run.save(update_fields=["status", "reason_codes", "finished_at"])
    execution = run.execution
    ledger_append(
        type="controlplane.execution.step.blocked",
        subject=f"execution/{execution.id}",
        reason_codes=list(codes),
        data=_step_ref(run),
        tenant=execution.tenant.slug,
        actor="system",
        time=at,
        traceparent=execution.traceparent,
    )


def execution_advance(*, execution: Execution, at: datetime) -> None:
    """Dispatch every cleared step whose dependencies completed; finish the execution when all are final."""
    if execution.status != ExecutionStatus.RUNNING:
        return
    runs = list(execution.step_runs.select_related("step").order_by("step__position"))
    if any(run.status in (StepStatus.BLOCKED, StepStatus.FAILED) for run in runs):
        _execution_wind_down(execution, runs, at=at)
        return
    if all(run.status == StepStatus.COMPLETED for run in runs):
        execution.complete()
        execution.finished_at = at
        execution.save(update_fields=["status", "finished_at"])
        ledger_append(
            type="controlplane.execution.completed",
            subject=f"execution/{execution.id}",
            data={"execution": execution.id, "outcomes": {r.step.key: r.outcome for r in runs}},
            tenant=execution.tenant.slug,
            actor="system",
            time=at,
            traceparent=execution.traceparent,
        )
        return
    status_by_key = {run.step.key: run.status for run in runs}
    for run in runs:
        if (
            run.status == StepStatus.READY
            and run.dispatched_at is None
            and all(status_by_key[dep] == StepStatus.COMPLETED for dep in run.step.depends_on)
        ):
            step_dispatch(run=run, at=at)


def _execution_wind_down(execution: Execution, runs: list[StepRun], *, at: datetime) -> None:
    """A step was blocked or failed: cancel every open step (and its pending approval); once nothing
    runs any more, the execution fails with the blocked and failed steps' reason codes."""
    for run in runs:
        if run.status in (StepStatus.PENDING, StepStatus.WAITING_APPROVAL, StepStatus.READY, StepStatus.HELD):
            run.cancel()
            run.finished_at = at
            run.save(update_fields=["status", "finished_at"])
            if run.approval_id:
                approval = run.approval
                if approval.status == ApprovalStatus.PENDING:
                    approvals.approval_cancel(
                        approval=approval, actor="system", reason="execution failed", at=at
                    )
    if any(run.status == StepStatus.RUNNING for run in runs):
        return
    codes = sorted(
        {
            code
            for run in runs
            if run.status in (StepStatus.BLOCKED, StepStatus.FAILED)
            for code in run.reason_codes
        }
    )
    execution.fail()
    execution.finished_at = at
    execution.reason_codes = codes
    execution.save(update_fields=["status", "finished_at", "reason_codes"])
    ledger_append(
        type="controlplane.execution.failed",
        subject=f"execution/{execution.id}",
        reason_codes=list(codes),
        data={"execution": execution.id},
        tenant=execution.tenant.slug,
        actor="system",
        time=at,
        traceparent=execution.traceparent,
    )


def step_dispatch(*, run: StepRun, at: datetime) -> bool:
    """Send a cleared step to a worker when the transaction commits, unless a dispatch gate holds it.

    True when it was dispatched; False when a gate (the kill switch first) holds it: the execution goes on
    running and the step waits, `held` with the gate's code (see `controlplane.runtime.gates`).
    """
    held = dispatch_hold(run)
    if held is not None:
        step_hold(run=run, gate=held[0], hold=held[1], at=at)
        return False
    # The step row is the outbox: the task is published after commit; if the broker is down the step
    # stays here (enqueued_at empty) and the sweeper publishes it later (see steps.py).
    run.dispatched_at = at
    run.enqueued_at = None
    run.save(update_fields=["dispatched_at", "enqueued_at"])
    step_publish_on_commit(run=run)
    return True


def _step_ref(run: StepRun) -> dict[str, str]:
    return {"execution": run.execution.id, "step": run.step.key, "execution_key": run.step.execution_key}


def step_hold(*, run: StepRun, gate: DispatchGate, hold: Hold, at: datetime) -> None:
    """A gate holds a cleared step: it waits, visibly and with its code, instead of being dispatched."""
    run.hold()
    run.held_gate, run.held_code, run.held_detail, run.held_since = (
        gate.name,
        hold.code,
        hold.detail[:300],
        at,
    )
    run.dispatched_at = run.enqueued_at = None  # out of the outbox: resuming dispatches it afresh
    run.save(
        update_fields=[
            "status",
            "held_gate",
            "held_code",
            "held_detail",
            "held_since",
            "dispatched_at",
            "enqueued_at",
        ]
    )
    execution = run.execution
    ledger_append(
        type="controlplane.execution.step.held",
        subject=f"execution/{execution.id}",
        reason_codes=[hold.code],
        data={**_step_ref(run), "gate": gate.name, "detail": hold.detail[:300], "hold": hold.data},
        tenant=execution.tenant.slug,
        actor="system",
        time=at,
        traceparent=execution.traceparent,
    )


def step_resume(*, run: StepRun, actor: str, reason: str, at: datetime) -> bool:
    """Resume a held step (the caller holds its lock): dispatched at once unless a gate still holds it.

    Returns False, changing nothing, when the gate that held the step still holds it. When that gate let
    it go but another holds it now, the step is resumed from the first hold and held by the other (each
    hold is its own: what the kill switch held waits for a person, what a plugin holds for the plugin).
    """
    if run.status != StepStatus.HELD or run.execution.status != ExecutionStatus.RUNNING:
        return False
    own = dispatch_gate(run.held_gate)
    if own is not None and own.check(run) is not None:
        return False
    still = dispatch_hold(run)
    gate, code, since = run.held_gate, run.held_code, run.held_since
    run.resume()
    run.held_gate, run.held_code, run.held_detail, run.held_since = "", "", "", None
    run.save(update_fields=["status", "held_gate", "held_code", "held_detail", "held_since"])
    execution = run.execution
    ledger_append(
        type="controlplane.execution.step.resumed",
        subject=f"execution/{execution.id}",
        reason_codes=[code] if code else [],
        data={
            **_step_ref(run),
            "gate": gate,
            "reason": reason,
            "held_seconds": round((at - since).total_seconds(), 3) if since else 0,
        },
        tenant=execution.tenant.slug,
        actor=actor,
        time=at,
        traceparent=execution.traceparent,
    )
    if still is not None:
        step_hold(run=run, gate=still[0], hold=still[1], at=at)
        return True
    execution_advance(execution=execution, at=at)
    return True


def step_publish(*, step_run_id: int, countdown: float = 0) -> bool:
    """Hand a cleared step to the broker; False when it stays in the outbox for the sweeper.

    In the quickstart (tasks run in-process) a delayed retry is not run inline: the in-process sweeper runs
    it once its backoff has passed.
    """
    from controlplane.runtime.tasks import run_step  # the tasks module imports the services

    if run_step.app.conf.task_always_eager:
        if countdown > 0:
            return False
        run_step.apply_async((step_run_id,))
        return True
    try:
        run_step.apply_async(
            (step_run_id,), countdown=countdown or None, retry=True, retry_policy=PUBLISH_RETRY_POLICY
        )
    except (OperationalError, OSError) as exc:
        logger.warning("BROKER_UNAVAILABLE: step run %s stays in the outbox (%s)", step_run_id, exc)
        return False
    StepRun.objects.filter(pk=step_run_id, status=StepStatus.READY).update(enqueued_at=timezone.now())
    return True


def step_publish_on_commit(*, run: StepRun, countdown: float = 0) -> None:
    """Publish the step once the transaction that cleared (or re-queued) it commits."""
    transaction.on_commit(partial(step_publish, step_run_id=run.pk, countdown=countdown))
