"""Ledger tasks: take no state, call a service, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from controlplane.ledger.checkpoints import checkpoint_create


@shared_task(name="controlplane.ledger.tasks.ledger_checkpoint_task")
def ledger_checkpoint_task() -> int:
    """Sign the current chain head. A second run at the same head returns the same checkpoint."""
    return checkpoint_create(actor="system/beat").seq
