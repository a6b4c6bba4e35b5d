"""A benchmark-only experiment: queue-time load shedding in front of the ingest endpoint.

The product sheds with a per-process in-flight limit inside the ingest view. Under gunicorn that limit
only sees requests that already hold a worker thread: the excess waits *before* it, in gunicorn's
thread-pool queue (and the kernel's accept queue), and is answered late, 503 or not.
This prototype measures the alternative: note when a request became ready to be served (its
connection accepted, or readable again when kept alive) and, if it then waited longer than a budget
for a thread, answer 503 INGEST_OVERLOADED at once without entering Django.

Selected with `--worker-class bench.shedding.QueueTimeWorker` (budget: BENCH_QUEUE_BUDGET_MS). It is
not part of the product; docs/benchmarks.md reports what it changes and what the product would need.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

INGEST_PATH = "/api/v1/events/"
_local = threading.local()
_BODY = json.dumps(
    {"detail": "The ingest path is saturated; retry with backoff.", "code": "INGEST_OVERLOADED"}
).encode()


def budget_seconds() -> float:
    return float(os.environ.get("BENCH_QUEUE_BUDGET_MS", "50")) / 1000.0


class QueueTimeWorker(ThreadWorker):
    """gthread, plus the moment each request was queued for a thread (seen by `shed_late_requests`)."""

    def enqueue_req(self, conn: Any) -> None:
        conn.bench_queued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        _local.queued_at = getattr(conn, "bench_queued_at", None)
        return super().handle(conn)


def shed_late_requests(application: Callable, budget: float) -> Callable:
    """Wrap a WSGI app: an ingest request that waited longer than `budget` for a thread gets 503."""

    def wrapped(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        queued_at = getattr(_local, "queued_at", None)
        if (
            queued_at is not None
            and environ.get("PATH_INFO") == INGEST_PATH
            and time.monotonic() - queued_at > budget
        ):
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "application/json"),
                    ("Retry-After", "1"),
                    ("Content-Length", str(len(_BODY))),
                ],
            )
            return [_BODY]
        return application(environ, start_response)

    return wrapped
