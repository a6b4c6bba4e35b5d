"""Periodic work without a broker: in the quickstart the beat schedule runs inside the web process.

With no `REDIS_URL` there is no Celery worker or beat: steps already run in-process when their transaction
commits (`CELERY_TASK_ALWAYS_EAGER`), and this module runs the beat schedule (each app's
`register_periodic` entries: approval expiry and escalation, the runtime sweeper, checkpoints) on
incoming requests, each entry at most once per its period, in the request's thread before the view. A
newcomer clicking through the console, or the console's own self-refreshing pages, drive it; an idle
quickstart does nothing, and the next request catches up. Chosen over a background thread because SQLite
takes one writer at a time. Enabled by `CONTROLPLANE_INPROCESS_PERIODIC` (default: on exactly when there
is no broker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

_guard = threading.Lock()
_last_run: dict[str, float] = {}


def _period_seconds(schedule: object) -> float | None:
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule
    return run_every.total_seconds() if isinstance(run_every, timedelta) else None


def run_due_periodic_work(*, now: float | None = None) -> list[str]:
    """Run every beat entry whose period has passed since it last ran in this process; their names.

    One caller at a time: a request arriving while another runs the work does not wait for it.
    """
    from celery import current_app as app  # the project's app (controlplane/__init__.py makes it current)

    if not _guard.acquire(blocking=False):
        return []
    try:
        app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them at start
        tasks = app.tasks  # finalises the app, which fills in the beat schedule
        now = time.monotonic() if now is None else now
        ran = []
        for name, entry in sorted(app.conf.beat_schedule.items()):
            period = _period_seconds(entry["schedule"])
            if period is None:
                continue  # crontab-style entries need a real beat
            last = _last_run.get(name)
            if last is not None and now - last < period:
                continue
            _last_run[name] = now
            try:
                tasks[entry["task"]].apply(args=entry.get("args", ()), throw=True)
            except Exception:
                logger.exception("in-process periodic task %s failed", name)
            ran.append(name)
        return ran
    finally:
        _guard.release()


def forget_periodic_runs() -> None:
    """Make every entry due again (tests)."""
    with _guard:
        _last_run.clear()


class InProcessPeriodicMiddleware:
    """Runs due periodic work before the view when there is no broker (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        if not settings.CONTROLPLANE_INPROCESS_PERIODIC:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        run_due_periodic_work()
        return self.get_response(request)
