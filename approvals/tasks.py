"""Approvals tasks: the periodic sweep (expiry fails closed; escalation follows the ladder)."""

from __future__ import annotations

from celery import shared_task

from approvals.services import approvals_sweep


@shared_task(name="approvals.tasks.approvals_sweep_task")
def approvals_sweep_task() -> dict[str, int]:
    return approvals_sweep()
