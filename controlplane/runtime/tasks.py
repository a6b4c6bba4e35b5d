"""Runtime tasks: take ids, call a service, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from controlplane.runtime.services import step_run_execute, step_runs_sweep


@shared_task(name="controlplane.runtime.tasks.run_step", acks_late=True)
def run_step(step_run_id: int) -> str:
    """Run one dispatched step. A second delivery finds it no longer `ready` and does nothing."""
    return step_run_execute(step_run_id=step_run_id).status


@shared_task(name="controlplane.runtime.tasks.runtime_sweep_task")
def runtime_sweep_task() -> dict[str, int]:
    """Re-dispatch steps whose worker died and publish what waits in the outbox."""
    return step_runs_sweep()
