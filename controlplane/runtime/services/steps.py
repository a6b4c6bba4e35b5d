"""Running a step, the worker side: claim it, run its executor, record the outcome; and cancelling.

`step_run_execute` claims the step (the dispatch gates, the kill switch first, checked again; lease
taken), runs the executor with the step's execution key while a heartbeat renews the lease, validates the
outcome against the action's output schema, then completes it, schedules a retry with backoff, or fails it
with a reason code. Claim and finish defer their ledger events to the end of their transaction
(`ledger_deferred`). Delivery is at least once; the execution key makes the effect happen once (runners
return the first result for a repeated key).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from jsonschema import Draft202012Validator

from approvals import services as approvals
from approvals.models import ApprovalRequest, ApprovalStatus
from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.outages import outage_code
from controlplane.ledger.batch import ledger_deferred
from controlplane.ledger.services import ledger_append
from controlplane.runtime import executors
from controlplane.runtime.gates import dispatch_hold
from controlplane.runtime.models import STEP_FINAL, Execution, ExecutionStatus, StepRun, StepStatus
from controlplane.runtime.services.common import iso
from controlplane.runtime.services.dispatch import (
    execution_advance,
    step_hold,
    step_publish_on_commit,
)
from skills.selectors import action_get

logger = logging.getLogger(__name__)

# A delayed retry message may arrive a little early when clocks differ between hosts.
EARLY_TOLERANCE_SECONDS = 1


def retry_delay_seconds(*, attempt: int) -> float:
    """Exponential backoff after failed attempt n: base x 2^(n-1), capped. No jitter: retries of different
    steps are spread by when they failed, and a deterministic schedule is easier to reason about at 3 AM."""
    base = settings.CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS
    return min(base * 2 ** (attempt - 1), settings.CONTROLPLANE_STEP_RETRY_BACKOFF_MAX_SECONDS)


class _Heartbeat:
    """Renews a running step's lease from a side thread while the executor works.

    When the worker dies the renewals stop and the sweeper finds the lease expired. Not started when the
    caller is itself inside a transaction (tasks run in-process within a test's transaction): a second
    connection would wait on the row lock that transaction holds.
    """

    def __init__(self, step_run_id: int, attempt: int):
        self.step_run_id = step_run_id
        self.attempt = attempt
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._beat, name=f"lease-{self.step_run_id}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        from django.db import connection as thread_connection  # this thread's own connection

        lease = settings.CONTROLPLANE_STEP_LEASE_SECONDS
        try:
            while not self._stop.wait(max(lease / 3, 0.2)):
                StepRun.objects.filter(
                    pk=self.step_run_id, status=StepStatus.RUNNING, attempts=self.attempt
                ).update(lease_expires_at=timezone.now() + timedelta(seconds=lease))
        except Exception:
            logger.exception("lease heartbeat of step run %s stopped", self.step_run_id)
        finally:
            thread_connection.close()


# The one lock order of the runtime and the approvals app, whoever starts: the pending approvals of an
# execution's steps (by id), then step runs, then the execution (then the chain, deferred: ledger_deferred).
# approval_decide takes an approval, then (its resolver) the step run, then the execution; so do we.


def execution_approvals_lock(*, execution_id: int) -> list[ApprovalRequest]:
    """Lock the pending approvals of the execution's steps, in id order: the first locks of the one order.

    Taken before any step run or execution row, so a decision on one of them (approval, then step run,
    then execution) and a cancel or a step finishing (which may cancel them) never wait on each other in
    a cycle.
    """
    return list(
        ApprovalRequest.objects.select_for_update(of=("self",))
        .filter(step_runs__execution_id=execution_id, status=ApprovalStatus.PENDING)
        .order_by("pk")
    )


def step_run_lock(*, step_run_id: int) -> tuple[StepRun, Execution]:
    """Lock the execution's pending approvals, the step run, then its execution (the one lock order),
    inside the caller's transaction."""
    execution_id = StepRun.objects.values_list("execution_id", flat=True).get(pk=step_run_id)
    execution_approvals_lock(execution_id=execution_id)
    run = StepRun.objects.select_for_update().select_related("step").get(pk=step_run_id)
    execution = Execution.objects.select_for_update().select_related("tenant").get(pk=run.execution_id)
    run.execution = execution
    return run, execution


def _step_event(
    type_: str, run: StepRun, *, at: datetime, codes: list[str] | tuple[str, ...] = (), **data: Any
) -> None:
    """Append a worker-side event of the step (actor `system`), naming the step and its execution key."""
    execution = run.execution
    ledger_append(
        type=type_,
        subject=f"execution/{execution.id}",
        reason_codes=list(codes),
        data={
            "execution": execution.id,
            "step": run.step.key,
            "execution_key": run.step.execution_key,
            **data,
        },
        tenant=execution.tenant.slug,
        actor="system",
        time=at,
        traceparent=execution.traceparent,
    )


def step_fail(*, run: StepRun, codes: list[str], error: dict[str, Any], at: datetime) -> None:
    """Fail the step for good (the caller advances the execution)."""
    run.fail()
    run.reason_codes = list(dict.fromkeys([*run.reason_codes, *codes]))
    run.outcome = {"error": error}
    run.finished_at = at
    run.lease_expires_at = None
    run.save(
        update_fields=["status", "reason_codes", "outcome", "finished_at", "lease_expires_at", "attempt_log"]
    )
    _step_event(
        "controlplane.execution.step.failed", run, at=at, codes=codes, attempt=run.attempts, error=error
    )


# --- claiming ------------------------------------------------------------------------------------------


def _claim(step_run_id: int) -> tuple[StepRun, executors.StepCall, dict[str, Any]] | None:
    """Lock the step and start an attempt; None when there is nothing to run (or it was refused)."""
    with transaction.atomic(), ledger_deferred():
        run, execution = step_run_lock(step_run_id=step_run_id)
        if run.status != StepStatus.READY or execution.status != ExecutionStatus.RUNNING:
            return None
        now = timezone.now()
        if run.not_before and run.not_before > now + timedelta(seconds=EARLY_TOLERANCE_SECONDS):
            return None  # a retry that is not due yet; its delayed task or the sweeper runs it
        step = run.step
        # What cleared it at dispatch may have changed since: the kill switch engaged (the first gate), a
        # plugin crashed. The step is held, not run; the worker refuses it before the side effect.
        held = dispatch_hold(run)
        if held is not None:
            step_hold(run=run, gate=held[0], hold=held[1], at=now)
            return None
        contract = action_get(name=step.action, version=step.action_version)
        if contract is None:
            step_fail(
                run=run,
                codes=["EXECUTOR_UNAVAILABLE"],
                error={
                    "code": "EXECUTOR_UNAVAILABLE",
                    "detail": f"{step.action}@{step.action_version} is no longer installed",
                    "retryable": False,
                },
                at=now,
            )
            execution_advance(execution=execution, at=now)
            return None
        _attempt_start(run, at=now)
    call = executors.StepCall(
        execution_key=step.execution_key,
        execution=execution.id,
        step=step.key,
        action=step.action,
        action_version=step.action_version,
        inputs=step.inputs,
        traceparent=execution.traceparent,
        tenant=execution.tenant.slug,
        attempt=run.attempts,
        capabilities=tuple(contract.capabilities),  # what the action's manifest declared (skills)
    )
    return run, call, contract.output_schema


def _attempt_start(run: StepRun, *, at: datetime) -> None:
    """Start the next attempt of a claimed step: running, under a fresh lease."""
    run.start()
    run.attempts += 1
    run.started_at = at
    run.not_before = None
    run.lease_expires_at = at + timedelta(seconds=settings.CONTROLPLANE_STEP_LEASE_SECONDS)
    run.attempt_log = [*run.attempt_log, {"attempt": run.attempts, "started_at": iso(at)}]
    run.save(
        update_fields=["status", "attempts", "started_at", "not_before", "lease_expires_at", "attempt_log"]
    )
    _step_event("controlplane.execution.step.started", run, at=at, attempt=run.attempts)


# --- running -------------------------------------------------------------------------------------------


def _validate_outcome(outcome: Any, schema: dict[str, Any]) -> executors.ExecutorError | None:
    if not isinstance(outcome, dict):
        return executors.ExecutorError("EXECUTOR_OUTPUT_INVALID", "the outcome is not a JSON object")
    error = next(iter(sorted(Draft202012Validator(schema).iter_errors(outcome), key=str)), None)
    if error is None:
        return None
    path = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return executors.ExecutorError(
        "EXECUTOR_OUTPUT_INVALID", f"the outcome does not match the output schema at {path}: {error.message}"
    )


def step_run_execute(*, step_run_id: int) -> StepRun:
    """The worker side: claim the step, check the kill switch again, run the executor, record the outcome.

    Safe to run twice: a step that is not `ready` (already running elsewhere, or finished) is left alone,
    and a late result of an attempt whose lease was taken over is discarded. The executor gets the step's
    execution key, so a runner performs the effect once however often it is asked.
    """
    claimed = _claim(step_run_id)
    if claimed is None:
        return StepRun.objects.get(pk=step_run_id)
    run, call, output_schema = claimed
    with _Heartbeat(step_run_id, call.attempt):
        try:
            outcome: dict[str, Any] = executors.executor_for(run.step.executor)(call)
            failure = None
        except executors.ExecutorError as exc:
            outcome, failure = {}, exc
    if failure is None:
        failure = _validate_outcome(outcome, output_schema)
    return _finish_reconnecting(step_run_id, call.attempt, outcome, failure)


# Waits between attempts to record an outcome while the database is unreachable (about 15 s in all).
FINISH_RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


def _finish_reconnecting(
    step_run_id: int, attempt: int, outcome: dict[str, Any], failure: executors.ExecutorError | None
) -> StepRun:
    """`_finish`, reconnecting when the database connection was lost meanwhile (PostgreSQL restarted while
    the executor ran): the effect happened, and its record should not wait for the lease to expire.

    Safe to repeat: a lost attempt rolled back, or committed and then finds the step no longer running
    (and leaves it alone). Past the last delay the error propagates; the lease and the sweeper take over.
    """
    for delay in (*FINISH_RECONNECT_DELAYS, None):
        try:
            return _finish(step_run_id, attempt, outcome, failure)
        except (OperationalError, InterfaceError) as exc:
            if delay is None or outage_code(exc) != "DATABASE_UNAVAILABLE":
                raise
            logger.warning(
                "DATABASE_UNAVAILABLE recording step run %s; reconnecting in %ss", step_run_id, delay
            )
            connection.close()
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# --- finishing -----------------------------------------------------------------------------------------


def _finish(
    step_run_id: int, attempt: int, outcome: dict[str, Any], failure: executors.ExecutorError | None
) -> StepRun:
    with transaction.atomic(), ledger_deferred():
        run, execution = step_run_lock(step_run_id=step_run_id)
        if run.status != StepStatus.RUNNING or run.attempts != attempt:
            logger.warning(
                "step run %s: attempt %s finished after its lease was taken over; its result is discarded",
                step_run_id,
                attempt,
            )
            return run
        now = timezone.now()
        entry = {**run.attempt_log[-1], "finished_at": iso(now)}
        if failure is None:
            _attempt_complete(run, entry, outcome, at=now)
        elif (
            failure.retryable
            and attempt < settings.CONTROLPLANE_STEP_MAX_ATTEMPTS
            and execution.status == ExecutionStatus.RUNNING
        ):
            _attempt_retry(run, entry, failure, at=now)
        else:
            exhausted = failure.retryable and execution.status == ExecutionStatus.RUNNING
            codes = [failure.code, *(["STEP_RETRY_EXHAUSTED"] if exhausted else [])]
            run.attempt_log = [
                *run.attempt_log[:-1],
                {
                    **entry,
                    "result": "failed",
                    "code": failure.code,
                    "retryable": failure.retryable,
                    "detail": str(failure),
                },
            ]
            step_fail(run=run, codes=codes, error=failure.as_dict(), at=now)
        execution_advance(execution=execution, at=now)
    return run


def _attempt_complete(run: StepRun, entry: dict[str, Any], outcome: dict[str, Any], *, at: datetime) -> None:
    run.attempt_log = [*run.attempt_log[:-1], {**entry, "result": "completed"}]
    run.complete()
    run.outcome = outcome
    run.finished_at = at
    run.lease_expires_at = None
    run.save(update_fields=["status", "outcome", "finished_at", "lease_expires_at", "attempt_log"])
    _step_event("controlplane.execution.step.completed", run, at=at, attempt=run.attempts, outcome=outcome)


def _attempt_retry(
    run: StepRun, entry: dict[str, Any], failure: executors.ExecutorError, *, at: datetime
) -> None:
    """A retryable failure with attempts left: back to the outbox, due after the backoff."""
    delay = retry_delay_seconds(attempt=run.attempts)
    retry_at = at + timedelta(seconds=delay)
    run.attempt_log = [
        *run.attempt_log[:-1],
        {**entry, "result": "retry", "code": failure.code, "retryable": True, "detail": str(failure)},
    ]
    run.retry()
    run.not_before = retry_at
    run.dispatched_at = at
    run.enqueued_at = None
    run.lease_expires_at = None
    run.save(
        update_fields=[
            "status",
            "not_before",
            "dispatched_at",
            "enqueued_at",
            "lease_expires_at",
            "attempt_log",
        ]
    )
    _step_event(
        "controlplane.execution.step.retry_scheduled",
        run,
        at=at,
        codes=[failure.code],
        attempt=run.attempts,
        retry_at=iso(retry_at),
        error=failure.as_dict(),
    )
    step_publish_on_commit(run=run, countdown=delay)


# --- cancelling ----------------------------------------------------------------------------------------


@transaction.atomic
@ledger_deferred()
def execution_cancel(*, execution: Execution, actor: Principal | str, reason: str) -> Execution:
    """Stop further steps; a step already running finishes and is recorded.

    `actor` is the principal cancelling, or a string naming the installation itself (a shell user).

    Locks in the one order (approvals, step runs, execution; see `execution_approvals_lock`): a decision
    racing the cancel either lands first (and the cancel then cancels what it cleared) or finds the
    approval cancelled (APPROVAL_NOT_PENDING); never a deadlock.
    """
    execution_approvals_lock(execution_id=execution.pk)
    list(StepRun.objects.select_for_update().filter(execution_id=execution.pk).order_by("pk"))
    execution = Execution.objects.select_for_update().select_related("tenant").get(pk=execution.pk)
    if execution.status != ExecutionStatus.RUNNING:
        raise ControlPlaneError("EXECUTION_NOT_RUNNING", f"the execution is {execution.status}")
    at = timezone.now()
    actor_ref = actor.ref if isinstance(actor, Principal) else actor
    for run in execution.step_runs.select_related("approval"):
        if run.status not in STEP_FINAL and run.status != StepStatus.RUNNING:
            run.cancel()
            run.finished_at = at
            run.save(update_fields=["status", "finished_at"])
            if run.approval_id and run.approval.status == ApprovalStatus.PENDING:
                approvals.approval_cancel(approval=run.approval, actor=actor_ref, reason=reason, at=at)
    execution.cancel()
    execution.finished_at = at
    execution.save(update_fields=["status", "finished_at"])
    ledger_append(
        type="controlplane.execution.cancelled",
        subject=f"execution/{execution.id}",
        data={"execution": execution.id, "reason": reason},
        tenant=execution.tenant.slug,
        actor=actor_ref,
        time=at,
        traceparent=execution.traceparent,
    )
    return execution
