"""The lean WSGI path of `POST /api/v1/events/`: a plain Django view, the in-flight limit and a group
commit across request threads.

Every delivery goes through the same checks, in the same order, with the same reason codes and bodies
as on the other paths (tests/channels/test_api.py is the contract; docs/ingest.md the description).
What makes it fast (docs/benchmarks.md has the measurements):

- **No DRF on POST.** `EventIngestView.dispatch` (controlplane.channels.ingest.view) hands a POST to
  `ingest_post`, which reads the raw body and answers with bytes made by orjson. DRF still serves the
  other methods and the OpenAPI schema.
- **A lean middleware chain.** Under `controlplane.wsgi`, `controlplane.serving` runs the view behind
  `lean_middleware()` only: no URL resolving, none of the middleware in `LEAN_SKIP`.
- **Short-lived caches** of what authentication reads (controlplane.channels.ingest.checks).
- **Group commit.** A checked delivery is queued; one request thread at a time (the leader) takes
  everything queued, appends it under one chain lock with one INSERT for the events and one for their
  Delivery rows, commits once (one WAL flush), and wakes the others with their results. A 201 still
  means the event is durably on the chain. Inside a caller's transaction (tests, shells) a delivery is
  appended at once in that transaction instead.
- **Refusing early.** The in-flight limit (`CONTROLPLANE_INGEST_MAX_INFLIGHT`) as before, and, under
  gunicorn with `controlplane.serving.QueueTimeWorker`, a budget on the time a request waited for a
  worker thread (`CONTROLPLANE_INGEST_QUEUE_BUDGET_MS`): past it the request is answered
  503 INGEST_OVERLOADED before any other work (see `controlplane.serving`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from controlplane.channels import cloudevents, services
from controlplane.channels.ingest.checks import (
    Attempt,
    ingest_batch_check,
    ingest_check,
    json_response,
    refusal,
)
from controlplane.kernel.admission import InflightLimit
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.outages import outage_code
from controlplane.ledger.writer import ChainWriter

logger = logging.getLogger(__name__)

# Middleware that does nothing for a bearer-token JSON API (its work is for pages, sessions and forms).
LEAN_SKIP = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        # the ingest post answers a lost dependency with its code itself (ingest_post)
        "controlplane.middleware.OutageMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_otp.middleware.OTPMiddleware",  # the admin's second factor, on the session user
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        # browser hardening (CSP, no-store, Clear-Site-Data) and the console session's lifetime
        "controlplane.security_headers.SecurityHeadersMiddleware",
        "controlplane.security_headers.SessionLifetimeMiddleware",
        # the ingest post has its own in-flight limit (below) and answers a lost database itself
        "controlplane.middleware.AdmissionMiddleware",
    }
)


def lean_middleware() -> list[str]:
    """settings.MIDDLEWARE without LEAN_SKIP, in order."""
    return [path for path in settings.MIDDLEWARE if path not in LEAN_SKIP]


# --- the in-flight limit --------------------------------------------------------------------------------


# A per-process bound on concurrent ingests (the kernel's admission limit; tests lower the setting).
inflight = InflightLimit("CONTROLPLANE_INGEST_MAX_INFLIGHT")


# --- group commit ---------------------------------------------------------------------------------------


@dataclass
class _Waiting:
    delivery: services.CheckedDelivery
    outcome: services.Accepted | ControlPlaneError | None = None
    done: bool = False


@dataclass
class _GroupCommit:
    """Appends queued deliveries in batches: one leader thread at a time, one transaction per batch."""

    max_batch: int = 64
    writer: ChainWriter = field(default_factory=ChainWriter)
    _queue: list[_Waiting] = field(default_factory=list)
    _queue_lock: threading.Lock = field(default_factory=threading.Lock)
    _leader: threading.Lock = field(default_factory=threading.Lock)

    def append(self, delivery: services.CheckedDelivery) -> services.Accepted:
        waiting = _Waiting(delivery)
        with self._queue_lock:
            self._queue.append(waiting)
        while not waiting.done:
            with self._leader:  # whoever holds it appends what is queued; the others wait here
                while not waiting.done:
                    with self._queue_lock:
                        batch = self._queue[: self.max_batch]
                        del self._queue[: self.max_batch]
                    self._append_batch(batch)
        if isinstance(waiting.outcome, ControlPlaneError):
            raise waiting.outcome
        assert waiting.outcome is not None
        return waiting.outcome

    def _append_batch(self, batch: list[_Waiting]) -> None:
        outcomes = append_batch([w.delivery for w in batch], writer=self.writer)
        for waiting, outcome in zip(batch, outcomes, strict=True):
            waiting.outcome, waiting.done = outcome, True


def append_batch(
    deliveries: list[services.CheckedDelivery], *, writer: ChainWriter
) -> list[services.Outcome]:
    """Append a group commit's batch and return each delivery's outcome, in order; never raises.

    Plain events on `writer`'s own connection (two round trips); signals, whose detection runs through
    the ORM in the same transaction, SQLite, and everything when `writer` is None, on this thread's
    Django connection.
    """
    try:
        if writer is None or takes_orm_path(deliveries):
            return services.deliveries_append(deliveries)
        return services.deliveries_append_pipelined(deliveries, writer=writer)
    except Exception as exc:  # never leave a waiting request without an answer
        return failed_batch(deliveries, exc)


def takes_orm_path(deliveries: list[services.CheckedDelivery]) -> bool:
    """Signals (detection runs through the ORM in the append's transaction) and SQLite."""
    return connection.vendor != "postgresql" or any(d.signal is not None for d in deliveries)


def failed_batch(deliveries: list[services.CheckedDelivery], exc: Exception) -> list[services.Outcome]:
    """Every delivery of a batch that could not be appended gets the refusal (LEDGER_WRITE_FAILED when
    the failure was not one of ours, logged)."""
    if not isinstance(exc, ControlPlaneError):
        logger.error("group commit of %d deliveries failed", len(deliveries), exc_info=exc)
        exc = ControlPlaneError("LEDGER_WRITE_FAILED")
    return [exc] * len(deliveries)


group_commit = _GroupCommit()


def _append(delivery: services.CheckedDelivery) -> services.Accepted:
    if connection.in_atomic_block:  # the caller's transaction decides: append in it, alone
        outcome = services.deliveries_append([delivery])[0]
        if isinstance(outcome, ControlPlaneError):
            raise outcome
        return outcome
    return group_commit.append(delivery)


# --- the view -------------------------------------------------------------------------------------------


def ingest_post(request: HttpRequest) -> HttpResponse:
    """`POST /api/v1/events/`: append one signed CloudEvent, or refuse with a reason code (counted)."""
    request_id = getattr(request, "request_id", None)
    semaphore = inflight.semaphore()
    if not semaphore.acquire(blocking=False):
        services.rejection_record(producer=None, code="INGEST_OVERLOADED")
        return refusal(ControlPlaneError("INGEST_OVERLOADED"), request_id)
    attempt = Attempt()
    try:
        if request.content_type == cloudevents.BATCH_MEDIA_TYPE:
            return _batch_post(request, attempt)
        accepted = _append(ingest_check(request, attempt))
        return json_response(accepted.as_dict(), 201)
    except ControlPlaneError as exc:
        services.rejection_record(producer=attempt.producer, code=exc.code)
        return refusal(exc, request_id)
    except Exception as exc:  # PostgreSQL lost while authenticating: 503 with its code, never a 500
        code = outage_code(exc)
        if code is None:
            raise
        return refusal(ControlPlaneError(code), request_id)
    finally:
        semaphore.release()


def _batch_post(request: HttpRequest, attempt: Attempt) -> HttpResponse:
    """A batched delivery, verified as one and appended in one transaction (one chain append): `200` with
    each event's outcome in order — `accepted` with its seq, or refused with its code (a duplicate, on the
    chain or earlier in the batch, is refused alone, naming the original seq). Each refusal is counted."""
    checked = ingest_batch_check(request, attempt)
    valid = [item for item in checked if not isinstance(item, ControlPlaneError)]
    appended = iter(services.deliveries_append(valid) if valid else [])
    events, accepted = [], 0
    for index, item in enumerate(checked):
        outcome = item if isinstance(item, ControlPlaneError) else next(appended)
        if isinstance(outcome, ControlPlaneError):
            services.rejection_record(producer=attempt.producer, code=outcome.code)
            events.append({"index": index, "outcome": "refused", **outcome.as_dict()})
        else:
            accepted += 1
            events.append({"index": index, "outcome": "accepted", **outcome.as_dict()})
    return json_response({"accepted": accepted, "refused": len(events) - accepted, "events": events}, 200)
