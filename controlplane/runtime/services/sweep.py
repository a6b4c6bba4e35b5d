"""The sweeper (Celery beat, or in-process in the quickstart): re-dispatch steps whose worker died (lease
expired), publish what waits in the outbox, and re-publish tasks the broker lost."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.ledger.services import ledger_append
from controlplane.runtime.gates import dispatch_gate
from controlplane.runtime.models import ExecutionStatus, StepRun, StepStatus
from controlplane.runtime.services.common import iso
from controlplane.runtime.services.dispatch import (
    execution_advance,
    step_block,
    step_publish,
    step_publish_on_commit,
    step_resume,
)
from controlplane.runtime.services.steps import step_fail, step_run_lock

logger = logging.getLogger(__name__)

# A step cleared this long ago whose task the broker never accepted is published by the sweeper (the
# on-commit publish normally does it within milliseconds).
OUTBOX_GRACE_SECONDS = 5


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
        run, execution = step_run_lock(step_run_id=step_run_id)
        log = run.attempt_log or [{"attempt": run.attempts}]
        run.attempt_log = [
            *log[:-1],
            {**log[-1], "finished_at": iso(now), "result": "lost", "code": "STEP_LEASE_EXPIRED"},
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
            step_fail(run=run, codes=codes, error=error, at=now)
            execution_advance(execution=execution, at=now)
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
        ledger_append(
            type="controlplane.execution.step.requeued",
            subject=f"execution/{execution.id}",
            reason_codes=["STEP_LEASE_EXPIRED"],
            data={
                "execution": execution.id,
                "step": run.step.key,
                "execution_key": run.step.execution_key,
                "attempt": run.attempts,
                "lease_expired_at": iso(expiry),
            },
            tenant=execution.tenant.slug,
            actor="system",
            time=now,
            traceparent=execution.traceparent,
        )
        step_publish_on_commit(run=run)
    return "requeued"


def step_runs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Find steps whose worker died and steps the broker never got (or lost); send them (again).

    Safe to run twice and from several processes: each step is handled under its row lock, and running a
    step twice is harmless (the worker claims a `ready` step once; the runner dedupes by execution key).
    """
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0, "published": 0, "deferred": 0, **held_steps_recheck(now=now)}
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


def _recheck_held(step_run_id: int, *, now: datetime, actor: str, reason: str, manual: bool) -> str | None:
    with transaction.atomic():
        if not StepRun.objects.select_for_update(skip_locked=True).filter(pk=step_run_id).exists():
            return None  # someone else has it right now
        run, execution = step_run_lock(step_run_id=step_run_id)
        if run.status != StepStatus.HELD or execution.status != ExecutionStatus.RUNNING:
            return None
        gate = dispatch_gate(run.held_gate)
        limit = gate.fail_after() if gate else None
        if limit is not None and run.held_since and now - run.held_since > limit:
            step_block(run=run, codes=[run.held_code], at=now)
            execution_advance(execution=execution, at=now)
            return "held_failed"
        if not manual and gate is not None and not gate.auto_resume:
            return None  # only a person resumes what this gate held
        return "resumed" if step_resume(run=run, actor=actor, reason=reason, at=now) else None


def held_steps_recheck(
    *,
    now: datetime | None = None,
    gate: str | None = None,
    tenant: str | None = None,
    actor: str = "system",
    reason: str = "the hold cleared",
    manual: bool = False,
) -> dict[str, int]:
    """Re-check held steps: resume those no gate holds any more, block those held past their gate's limit.

    The sweeper calls it for every gate (steps of gates without `auto_resume` are only ever blocked by their
    limit, never resumed); whoever clears a hold may call it for that gate (`manual=True` resumes those too:
    the caller is the person's act, e.g. releasing a kill switch with "resume").
    """
    now = now or timezone.now()
    held = StepRun.objects.filter(status=StepStatus.HELD, execution__status=ExecutionStatus.RUNNING)
    if gate is not None:
        held = held.filter(held_gate=gate)
    if tenant is not None:
        held = held.filter(execution__tenant__slug=tenant)
    counts = {"resumed": 0, "held_failed": 0}
    for step_run_id in list(held.order_by("held_since", "pk").values_list("pk", flat=True)):
        result = _recheck_held(step_run_id, now=now, actor=actor, reason=reason, manual=manual)
        if result:
            counts[result] += 1
    return counts
