"""Settings for benchmark runs: the product's settings, with the bench-only URL conf and DEBUG off.

Selected with `DJANGO_SETTINGS_MODULE=bench.settings` by `python -m bench` (for its own process and
the gunicorn it starts). The product never imports this module.
"""

from __future__ import annotations

import os

from controlplane.settings import *  # noqa: F403  (the product's settings, unchanged but for the below)

ROOT_URLCONF = "bench.urls"
# Benchmarks measure the deployed code path: no debug toolbar-style bookkeeping, no query log.
DEBUG = False
# The Celery worker started by bench/flow.py consumes, and publishes to, a queue of its own.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "celery")
