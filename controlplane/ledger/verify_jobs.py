"""Chain verification as a job: `GET /api/v1/ledger/verify/` starts one (or joins the one running) and
answers with its status, instead of walking the whole chain inside every request.

A job's state lives in the cache (Redis outside the quickstart) for
CONTROLPLANE_LEDGER_VERIFY_JOB_TTL_SECONDS; its result is also kept as a `VerificationRun` row (the
dashboard's and `/readyz`'s). One job runs at a time for the installation: a request while one is
queued or running joins it. Starting a new one is limited per tenant to one per
CONTROLPLANE_LEDGER_VERIFY_START_INTERVAL_SECONDS (RATE_LIMITED with a Retry-After). The work is the
Celery task `ledger_verify_task`; in the quickstart (no broker) it runs in-process, so the first answer
already carries the result.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.verify import verification_record

CURRENT_KEY = "ledger-verify:current"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
_JOB_ID = re.compile(r"[0-9a-f]{16}")  # secrets.token_hex(8)


def _job_key(job_id: str) -> str:
    return f"ledger-verify:job:{job_id}"


def _starts_key(tenant: str) -> str:
    return f"ledger-verify:starts:{tenant or '-'}"


def _ttl() -> int:
    return settings.CONTROLPLANE_LEDGER_VERIFY_JOB_TTL_SECONDS


def verify_job_get(*, job_id: str) -> dict[str, Any] | None:
    """The job's state: {id, status, requested_by, tenant, queued_at, result?}, or None when unknown.

    Only an id of the shape this module makes (16 hex digits) is looked up: whatever a caller sent never
    becomes part of a cache key."""
    if not _JOB_ID.fullmatch(job_id or ""):
        return None
    return cache.get(_job_key(job_id))


def _save(job: dict[str, Any]) -> None:
    cache.set(_job_key(job["id"]), job, timeout=_ttl())


def verify_job_start(*, tenant: str, requested_by: str) -> tuple[dict[str, Any], bool]:
    """Join the job queued or running, or start one; returns (job, started).

    A start counts against the tenant's limit (RATE_LIMITED, `extra.retry_after`); joining does not.
    `dispatch` is called only for a job this call started.
    """
    current = cache.get(CURRENT_KEY)
    if current:
        job = verify_job_get(job_id=current)
        if job is not None and job["status"] in (QUEUED, RUNNING):
            return job, False
        cache.delete(CURRENT_KEY)
    interval = settings.CONTROLPLANE_LEDGER_VERIFY_START_INTERVAL_SECONDS
    if interval and not cache.add(_starts_key(tenant), 1, timeout=interval):
        raise ControlPlaneError(
            "RATE_LIMITED",
            f"a verification was started for {tenant or 'this tenant'} in the last {interval}s; "
            "poll its status URL or retry later",
            extra={"retry_after": interval},
        )
    job = {
        "id": secrets.token_hex(8),
        "status": QUEUED,
        "tenant": tenant,
        "requested_by": requested_by,
        "queued_at": timezone.now().isoformat(),
    }
    _save(job)
    if not cache.add(CURRENT_KEY, job["id"], timeout=_ttl()):  # another request started one meanwhile
        raced = verify_job_get(job_id=cache.get(CURRENT_KEY) or "")
        if raced is not None:
            cache.delete(_job_key(job["id"]))
            return raced, False
        cache.set(CURRENT_KEY, job["id"], timeout=_ttl())
    return job, True


def verify_job_run(*, job_id: str) -> dict[str, Any] | None:
    """Run the job: verify the chain, keep the result (job and `VerificationRun`). Safe to run twice:
    a job already done (or unknown: expired) is returned as it is."""
    job = verify_job_get(job_id=job_id)
    if job is None or job["status"] in (DONE, FAILED):
        return job
    job["status"] = RUNNING
    _save(job)
    try:
        result, run = verification_record()
    except Exception as exc:
        job.update(status=FAILED, error=type(exc).__name__)
        _save(job)
        raise
    finally:
        if cache.get(CURRENT_KEY) == job_id:
            cache.delete(CURRENT_KEY)
    job.update(status=DONE, result=result.as_dict(), run=run.pk, finished_at=timezone.now().isoformat())
    _save(job)
    return job


def verify_job_fail(*, job_id: str, code: str) -> None:
    """Mark a job that could not be dispatched as failed, so the next request starts a fresh one."""
    job = verify_job_get(job_id=job_id)
    if job is not None:
        job.update(status=FAILED, error=code)
        _save(job)
    if cache.get(CURRENT_KEY) == job_id:
        cache.delete(CURRENT_KEY)
