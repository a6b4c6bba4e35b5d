"""The Celery application. Periodic work is declared by each app (`controlplane.kernel.periodic`).

Every app registers its beat entries from its `AppConfig.ready()`, each with a line saying why it runs;
this module gathers them when the app is finalised.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _beat_schedule(sender: Celery, **_: object) -> None:
    from controlplane.kernel.periodic import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
