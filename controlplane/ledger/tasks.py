"""Ledger tasks: take no state, call a service, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from controlplane.ledger.checkpoints import checkpoint_create


@shared_task(name="controlplane.ledger.tasks.ledger_checkpoint_task")
def ledger_checkpoint_task() -> int:
    """Sign the current chain head. A second run at the same head returns the same checkpoint."""
    return checkpoint_create(actor="system/beat").seq


@shared_task(name="controlplane.ledger.tasks.ledger_verify_task")
def ledger_verify_task(job_id: str) -> bool | None:
    """Run one verification job (GET /api/v1/ledger/verify/). A job already done is left as it is."""
    from controlplane.ledger.verify_jobs import verify_job_run

    job = verify_job_run(job_id=job_id)
    return None if job is None or "result" not in job else job["result"]["ok"]
