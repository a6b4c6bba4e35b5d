"""Celery tasks of the learning loop: take nothing, call a service, safe to run twice (a report with the same
hash is recorded once)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="learning.tasks.learning_calibrate_task")
def learning_calibrate_task() -> dict[str, str]:
    from controlplane.identity.models import Tenant
    from learning.services import learning_calibrate

    return {t.slug: learning_calibrate(tenant=t, actor="system")[1] for t in Tenant.objects.order_by("slug")}
