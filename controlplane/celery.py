"""The Celery application. Periodic work is declared here, in code, one comment per entry."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _beat_schedule(sender: Celery, **_: object) -> None:
    from django.conf import settings

    sender.conf.beat_schedule = {
        # Sign the chain head so an exported checkpoint can later expose a rewritten history.
        "ledger-checkpoint": {
            "task": "controlplane.ledger.tasks.ledger_checkpoint_task",
            "schedule": float(settings.CONTROLPLANE_CHECKPOINT_INTERVAL_SECONDS),
        },
        # Expire overdue approval requests (fail closed) and escalate along each request's ladder.
        "approvals-sweep": {"task": "approvals.tasks.approvals_sweep_task", "schedule": 30.0},
        # Re-dispatch steps whose worker died (lease expired) and publish what waits in the outbox.
        "runtime-sweep": {
            "task": "controlplane.runtime.tasks.runtime_sweep_task",
            "schedule": float(settings.CONTROLPLANE_SWEEP_INTERVAL_SECONDS),
        },
    }
