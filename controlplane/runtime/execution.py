"""The worker side of the action flow (services, split from `services.py` by sub-domain).

- `step_publish`: hand a cleared step to the broker. The step row is the outbox: `dispatched_at` is written
  in the transaction that clears the step, `enqueued_at` once the broker accepted the task. When the broker
  is down the request still commits and the step waits in the outbox for the sweeper.
- `step_run_execute`: claim the step (kill switch checked again, lease taken), run the executor with the
  step's execution key while a heartbeat renews the lease, validate the outcome against the action's output
  schema, then complete it, schedule a retry with backoff, or fail it with a reason code.
- `step_runs_sweep` (Celery beat, or in-process in the quickstart): re-dispatch steps whose worker died
  (lease expired), publish what waits in the outbox, and re-publish tasks the broker lost.

Every state change appends its ledger event in the same transaction (claim and finish deferred to the end
of it: `ledger_deferred`). Delivery is at least once; the execution key makes the effect happen once
(runners return the first result for a repeated key).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from jsonschema import Draft202012Validator
from kombu.exceptions import OperationalError

from controlplane.ledger.batch import ledger_deferred
from controlplane.runtime import executors
from controlplane.runtime.models import Execution, ExecutionStatus, StepRun, StepStatus
from controlplane.runtime.services import _event, _execution_advance, _step_block, kill_switch_engaged_for
from skills.selectors import action_get

logger = logging.getLogger(__name__)

# Publishing waits at most about a second for an unreachable broker; the outbox covers the rest.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
# A step cleared this long ago whose task the broker never accepted is published by the sweeper (the
# on-commit publish normally does it within milliseconds).
OUTBOX_GRACE_SECONDS = 5
# A delayed retry message may arrive a little early when clocks differ between hosts.
EARLY_TOLERANCE_SECONDS = 1


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def retry_delay_seconds(attempt: int) -> float:
    """Exponential backoff after failed attempt n: base x 2^(n-1), capped. No jitter: retries of different
    steps are spread by when they failed, and a deterministic schedule is easier to reason about at 3 AM."""
    base = settings.CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS
    return min(base * 2 ** (attempt - 1), settings.CONTROLPLANE_STEP_RETRY_BACKOFF_MAX_SECONDS)


# --- publishing (the outbox) ---------------------------------------------------------------------------


def step_publish(*, step_run_id: int, countdown: float = 0) -> bool:
    """Hand a cleared step to the broker; False when it stays in the outbox for the sweeper.

    In the quickstart (tasks run in-process) a delayed retry is not run inline: the in-process sweeper runs
    it once its backoff has passed.
    """
    from controlplane.runtime.tasks import run_step

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


def step_publish_on_commit(run: StepRun, *, countdown: float = 0) -> None:
    transaction.on_commit(partial(step_publish, step_run_id=run.pk, countdown=countdown))


# --- running a step ------------------------------------------------------------------------------------


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


def _locked(step_run_id: int) -> tuple[StepRun, Execution]:
    run = StepRun.objects.select_for_update().select_related("step").get(pk=step_run_id)
    execution = Execution.objects.select_for_update().select_related("tenant").get(pk=run.execution_id)
    run.execution = execution
    return run, execution


def _fail(run: StepRun, *, codes: list[str], error: dict[str, Any], at: datetime) -> None:
    """Fail the step for good (the caller advances the execution)."""
    execution = run.execution
    run.fail()
    run.reason_codes = list(dict.fromkeys([*run.reason_codes, *codes]))
    run.outcome = {"error": error}
    run.finished_at = at
    run.lease_expires_at = None
    run.save(
        update_fields=["status", "reason_codes", "outcome", "finished_at", "lease_expires_at", "attempt_log"]
    )
    _event(
        "controlplane.execution.step.failed",
        subject=f"execution/{execution.id}",
        codes=codes,
        data={
            "execution": execution.id,
            "step": run.step.key,
            "execution_key": run.step.execution_key,
            "attempt": run.attempts,
            "error": error,
        },
        tenant=execution.tenant.slug,
        actor="system",
        at=at,
        traceparent=execution.traceparent,
    )


def _claim(step_run_id: int) -> tuple[StepRun, executors.StepCall, dict[str, Any]] | None:
    """Lock the step and start an attempt; None when there is nothing to run (or it was refused)."""
    with transaction.atomic(), ledger_deferred():
        run, execution = _locked(step_run_id)
        if run.status != StepStatus.READY or execution.status != ExecutionStatus.RUNNING:
            return None
        now = timezone.now()
        if run.not_before and run.not_before > now + timedelta(seconds=EARLY_TOLERANCE_SECONDS):
            return None  # a retry that is not due yet; its delayed task or the sweeper runs it
        step = run.step
        if kill_switch_engaged_for(tenant=execution.tenant.slug, action=step.action) is not None:
            _step_block(run, codes=["KILL_SWITCH_ENGAGED"], at=now)
            _execution_advance(execution, at=now)
            return None
        contract = action_get(name=step.action, version=step.action_version)
        if contract is None:
            _fail(
                run,
                codes=["EXECUTOR_UNAVAILABLE"],
                error={
                    "code": "EXECUTOR_UNAVAILABLE",
                    "detail": f"{step.action}@{step.action_version} is no longer installed",
                    "retryable": False,
                },
                at=now,
            )
            _execution_advance(execution, at=now)
            return None
        run.start()
        run.attempts += 1
        run.started_at = now
        run.not_before = None
        run.lease_expires_at = now + timedelta(seconds=settings.CONTROLPLANE_STEP_LEASE_SECONDS)
        run.attempt_log = [*run.attempt_log, {"attempt": run.attempts, "started_at": _iso(now)}]
        run.save(
            update_fields=[
                "status",
                "attempts",
                "started_at",
                "not_before",
                "lease_expires_at",
                "attempt_log",
            ]
        )
        _event(
            "controlplane.execution.step.started",
            subject=f"execution/{execution.id}",
            data={
                "execution": execution.id,
                "step": step.key,
                "execution_key": step.execution_key,
                "attempt": run.attempts,
            },
            tenant=execution.tenant.slug,
            actor="system",
            at=now,
            traceparent=execution.traceparent,
        )
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
    )
    return run, call, contract.output_schema


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
            outcome: dict[str, Any] = executors.run(run.step.executor, call)
            failure = None
        except executors.ExecutorError as exc:
            outcome, failure = {}, exc
    if failure is None:
        failure = _validate_outcome(outcome, output_schema)
    return _finish(step_run_id, call.attempt, outcome, failure)


def _finish(
    step_run_id: int, attempt: int, outcome: dict[str, Any], failure: executors.ExecutorError | None
) -> StepRun:
    with transaction.atomic(), ledger_deferred():
        run, execution = _locked(step_run_id)
        if run.status != StepStatus.RUNNING or run.attempts != attempt:
            logger.warning(
                "step run %s: attempt %s finished after its lease was taken over; its result is discarded",
                step_run_id,
                attempt,
            )
            return run
        now = timezone.now()
        entry = {**run.attempt_log[-1], "finished_at": _iso(now)}
        if failure is None:
            run.attempt_log = [*run.attempt_log[:-1], {**entry, "result": "completed"}]
            run.complete()
            run.outcome = outcome
            run.finished_at = now
            run.lease_expires_at = None
            run.save(update_fields=["status", "outcome", "finished_at", "lease_expires_at", "attempt_log"])
            _event(
                "controlplane.execution.step.completed",
                subject=f"execution/{execution.id}",
                data={
                    "execution": execution.id,
                    "step": run.step.key,
                    "execution_key": run.step.execution_key,
                    "attempt": attempt,
                    "outcome": outcome,
                },
                tenant=execution.tenant.slug,
                actor="system",
                at=now,
                traceparent=execution.traceparent,
            )
        elif (
            failure.retryable
            and attempt < settings.CONTROLPLANE_STEP_MAX_ATTEMPTS
            and execution.status == ExecutionStatus.RUNNING
        ):
            delay = retry_delay_seconds(attempt)
            retry_at = now + timedelta(seconds=delay)
            run.attempt_log = [
                *run.attempt_log[:-1],
                {**entry, "result": "retry", "code": failure.code, "retryable": True, "detail": str(failure)},
            ]
            run.retry()
            run.not_before = retry_at
            run.dispatched_at = now
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
            _event(
                "controlplane.execution.step.retry_scheduled",
                subject=f"execution/{execution.id}",
                codes=[failure.code],
                data={
                    "execution": execution.id,
                    "step": run.step.key,
                    "execution_key": run.step.execution_key,
                    "attempt": attempt,
                    "retry_at": _iso(retry_at),
                    "error": failure.as_dict(),
                },
                tenant=execution.tenant.slug,
                actor="system",
                at=now,
                traceparent=execution.traceparent,
            )
            step_publish_on_commit(run, countdown=delay)
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
            _fail(run, codes=codes, error=failure.as_dict(), at=now)
        _execution_advance(execution, at=now)
    return run


# --- the sweeper ---------------------------------------------------------------------------------------


def _requeue_lost(step_run_id: int, *, now: datetime) -> str | None:
    """A running step whose lease expired: its worker died. Send it again with the same execution key."""
    lease = timedelta(seconds=settings.CONTROLPLANE_STEP_LEASE_SECONDS)
    with transaction.atomic():
        run = StepRun.objects.select_for_update(skip_locked=True).filter(pk=step_run_id).first()
        if run is None or run.status != StepStatus.RUNNING:
            return None  # finishing right now, or already handled
        expiry = run.lease_expires_at or (run.started_at + lease if run.started_at else now)
        if expiry >= now:
            return None
        run, execution = _locked(step_run_id)
        log = run.attempt_log or [{"attempt": run.attempts}]
        run.attempt_log = [
            *log[:-1],
            {**log[-1], "finished_at": _iso(now), "result": "lost", "code": "STEP_LEASE_EXPIRED"},
        ]
        if (
            execution.status != ExecutionStatus.RUNNING
            or run.attempts >= settings.CONTROLPLANE_STEP_MAX_ATTEMPTS
        ):
            exhausted = execution.status == ExecutionStatus.RUNNING
            codes = ["STEP_LEASE_EXPIRED", *(["STEP_RETRY_EXHAUSTED"] if exhausted else [])]
            error = {
                "code": "STEP_LEASE_EXPIRED",
                "detail": "the worker running this step stopped renewing its lease",
                "retryable": True,
            }
            _fail(run, codes=codes, error=error, at=now)
            _execution_advance(execution, at=now)
            return "failed"
        run.retry()
        run.lease_expires_at = None
        run.not_before = None
        run.dispatched_at = now
        run.enqueued_at = None
        run.save(
            update_fields=[
                "status",
                "lease_expires_at",
                "not_before",
                "dispatched_at",
                "enqueued_at",
                "attempt_log",
            ]
        )
        _event(
            "controlplane.execution.step.requeued",
            subject=f"execution/{execution.id}",
            codes=["STEP_LEASE_EXPIRED"],
            data={
                "execution": execution.id,
                "step": run.step.key,
                "execution_key": run.step.execution_key,
                "attempt": run.attempts,
                "lease_expired_at": _iso(expiry),
            },
            tenant=execution.tenant.slug,
            actor="system",
            at=now,
            traceparent=execution.traceparent,
        )
        step_publish_on_commit(run)
    return "requeued"


def step_runs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Find steps whose worker died and steps the broker never got (or lost); send them (again).

    Safe to run twice and from several processes: each step is handled under its row lock, and running a
    step twice is harmless (the worker claims a `ready` step once; the runner dedupes by execution key).
    """
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0, "published": 0, "deferred": 0}
    lease = timedelta(seconds=settings.CONTROLPLANE_STEP_LEASE_SECONDS)
    lost = StepRun.objects.filter(status=StepStatus.RUNNING).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, started_at__lt=now - lease)
    )
    for step_run_id in list(lost.values_list("pk", flat=True)):
        result = _requeue_lost(step_run_id, now=now)
        if result:
            counts[result] += 1
    grace = now - timedelta(seconds=OUTBOX_GRACE_SECONDS)
    stale = now - timedelta(seconds=settings.CONTROLPLANE_STEP_REDISPATCH_AFTER_SECONDS)
    waiting = StepRun.objects.filter(
        status=StepStatus.READY, execution__status=ExecutionStatus.RUNNING, dispatched_at__isnull=False
    ).filter(
        # in the outbox (never accepted by the broker): a first dispatch after the grace, a retry when due
        Q(enqueued_at__isnull=True)
        & (Q(not_before__isnull=True, dispatched_at__lt=grace) | Q(not_before__lte=now))
        # or accepted long ago and never started: the broker lost it
        | Q(enqueued_at__lt=stale) & (Q(not_before__isnull=True) | Q(not_before__lt=stale))
    )
    for step_run_id in list(waiting.order_by("dispatched_at").values_list("pk", flat=True)):
        counts["published" if step_publish(step_run_id=step_run_id) else "deferred"] += 1
    if any(counts.values()):
        logger.info("runtime sweep: %s", counts)
    return counts
