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
from controlplane.runtime.models import Execution, ExecutionStatus, StepRun, StepStatus
from controlplane.runtime.selectors import killswitch_engaged_for

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
        data={"execution": execution.id, "step": run.step.key, "execution_key": run.step.execution_key},
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
    blocked = False
    for run in runs:
        if (
            run.status == StepStatus.READY
            and run.dispatched_at is None
            and all(status_by_key[dep] == StepStatus.COMPLETED for dep in run.step.depends_on)
        ):
            blocked |= not step_dispatch(run=run, at=at)
    if blocked:
        execution_advance(execution=execution, at=at)


def _execution_wind_down(execution: Execution, runs: list[StepRun], *, at: datetime) -> None:
    """A step was blocked or failed: cancel every open step (and its pending approval); once nothing
    runs any more, the execution fails with the blocked and failed steps' reason codes."""
    for run in runs:
        if run.status in (StepStatus.PENDING, StepStatus.WAITING_APPROVAL, StepStatus.READY):
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
    """Send a cleared step to a worker when the transaction commits; False if the kill switch holds it."""
    execution = run.execution
    switch = killswitch_engaged_for(tenant=execution.tenant.slug, action=run.step.action)
    if switch is not None:
        step_block(run=run, codes=["KILL_SWITCH_ENGAGED"], at=at)
        return False
    # The step row is the outbox: the task is published after commit; if the broker is down the step
    # stays here (enqueued_at empty) and the sweeper publishes it later (see steps.py).
    run.dispatched_at = at
    run.enqueued_at = None
    run.save(update_fields=["dispatched_at", "enqueued_at"])
    step_publish_on_commit(run=run)
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
