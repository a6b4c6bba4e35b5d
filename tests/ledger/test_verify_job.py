"""`GET /api/v1/ledger/verify/` starts (or joins) a verification job instead of walking the chain in the
request; starting one is rate-limited per tenant."""

from __future__ import annotations

import pytest

from controlplane.ledger import verify_jobs
from controlplane.ledger.models import VerificationRun
from controlplane.ledger.services import ledger_append
from controlplane.ledger.tasks import ledger_verify_task
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/ledger/verify/"


@pytest.fixture
def queued(monkeypatch):
    """Record the jobs queued instead of sending them to a broker no worker listens to in tests."""
    jobs: list[str] = []
    monkeypatch.setattr(ledger_verify_task, "apply_async", lambda args, **_: jobs.append(args[0]))
    return jobs


def _get(client, path: str, token: str):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def _verifier(slug: str = "acme") -> str:
    return token_for(PrincipalFactory(tenant=TenantFactory(slug=slug), capabilities=["ledger.verify"]))


def test_a_request_starts_a_job_and_its_status_url_gives_the_result_when_done(client, queued):
    ledger_append(type="controlplane.test.v", subject="v", data={})
    token = _verifier()
    response = _get(client, VERIFY, token)
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["started"]) == ("queued", True)
    assert body["status_url"] == f"{VERIFY}{body['job']}/" == response["Location"]
    assert queued == [body["job"]] and not VerificationRun.objects.exists()  # nothing walked in the request
    assert _get(client, body["status_url"], token).status_code == 202

    assert ledger_verify_task(body["job"]) is True  # the worker
    done = _get(client, body["status_url"], token)
    assert done.status_code == 200
    result = done.json()
    assert (result["ok"], result["status"], result["job"]) == (True, "done", body["job"])
    assert result["events_checked"] >= 2
    assert VerificationRun.objects.get().ok is True
    assert ledger_verify_task(body["job"]) is True  # safe to run twice: nothing new
    assert VerificationRun.objects.count() == 1


def test_requests_while_a_job_runs_join_it_and_do_not_count_as_starts(client, queued, settings):
    settings.CONTROLPLANE_LEDGER_VERIFY_START_INTERVAL_SECONDS = 600
    token, other = _verifier(), _verifier("globex")
    first = _get(client, VERIFY, token).json()
    second = _get(client, VERIFY, token).json()
    third = _get(client, VERIFY, other).json()
    assert first["job"] == second["job"] == third["job"]
    assert (second["started"], third["started"]) == (False, False) and queued == [first["job"]]


def test_starting_again_too_soon_is_rate_limited_per_tenant(client, queued, settings):
    settings.CONTROLPLANE_LEDGER_VERIFY_START_INTERVAL_SECONDS = 600
    token, other = _verifier(), _verifier("globex")
    job = _get(client, VERIFY, token).json()["job"]
    ledger_verify_task(job)
    refused = _get(client, VERIFY, token)
    assert refused.status_code == 429 and refused["Retry-After"] == "600"
    assert refused.json()["code"] == "RATE_LIMITED"
    assert queued == [job] and VerificationRun.objects.count() == 1  # nothing started, nothing run
    assert _get(client, VERIFY, other).status_code == 202  # another tenant has its own budget


def test_unknown_jobs_and_missing_capability(client, queued):
    token = _verifier()
    unknown = _get(client, f"{VERIFY}0123456789abcdef/", token)
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
    # An id of another shape (the fuzzer sent control characters) is unknown without a cache lookup.
    assert verify_jobs.verify_job_get(job_id="\x8a\x05") is None
    odd = _get(client, f"{VERIFY}%8A%05/", token)
    assert odd.status_code == 404 and odd.json()["code"] == "NOT_FOUND"
    reader = token_for(PrincipalFactory(capabilities=["ledger.read"]))
    refused = _get(client, VERIFY, reader)
    assert refused.status_code == 403 and refused.json()["code"] == "CAPABILITY_MISSING"
    assert queued == []
