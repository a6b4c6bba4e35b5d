"""Admission: a per-process bound on concurrent work, read from a setting (tests change it at run time).

Shedding before a resource runs out is cheaper and clearer than running out: a request past the bound
is answered at once, `503` with a reason code and `Retry-After`, instead of queueing for a database
connection or a thread it would wait for past its client's timeout. Used by the project's admission
middleware (every endpoint, `CONTROLPLANE_MAX_INFLIGHT_REQUESTS`) and by the lean ingest path
(`CONTROLPLANE_INGEST_MAX_INFLIGHT`). The same idea as Envoy's and Finagle's concurrency limits: a
bound on in-flight requests, never a queue that grows.
"""

from __future__ import annotations

import threading

from django.conf import settings


class InflightLimit:
    """At most `settings.<setting>` holders at a time; the semaphore is rebuilt when the setting changes
    (a holder of the old one releases the old one). 0 admits nothing."""

    def __init__(self, setting: str) -> None:
        self.setting = setting
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._semaphore = threading.BoundedSemaphore(1)

    def semaphore(self) -> threading.BoundedSemaphore:
        limit = max(int(getattr(settings, self.setting)), 0)
        if limit != self._limit:
            with self._lock:
                if limit != self._limit:
                    self._semaphore = threading.BoundedSemaphore(limit)
                    self._limit = limit
        return self._semaphore
