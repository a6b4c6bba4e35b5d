"""The outbox (broker down: nothing lost), leases and the sweeper, in-process against the real Redis.

A worker that dies is simulated here by starting an attempt and never finishing it; test_worker.py kills
a real worker process.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution, StepRun
from controlplane.runtime.services import steps
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.runtime.support import broker_unreachable, core_skill_installed

pytestmark = pytest.mark.django_db

DRAFT = {
    "goal": "two echoes",
    "steps": [
        {"key": "a", "action": "noop.echo", "inputs": {"message": "one"}},
        {"key": "b", "action": "noop.echo", "inputs": {"message": "two"}, "depends_on": ["a"]},
    ],
}


@pytest.fixture
def operator():
    policy.profile_bootstrap(environment="dev")
    return PrincipalFactory(
        tenant=TenantFactory(slug="acme"), name="ops-bot", capabilities=["intents.submit", "executions.read"]
    )


def queued_step_run_ids() -> list[int]:
    """The step runs whose run_step tasks wait in this test run's Redis queue."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    ids = []
    for raw in client.lrange("celery", 0, -1):
        message = json.loads(raw)
        headers = message["headers"]
        assert headers["task"] == "controlplane.runtime.tasks.run_step"
        ids.append(int(headers["argsrepr"].strip("(),")))
    return ids


def in_outbox(operator, capture, key="k-1"):
    """Submit with the broker unreachable: the request commits and the first step waits in the outbox."""
    with broker_unreachable(), capture(execute=True):
        intent = services.intent_submit(principal=operator, draft=DRAFT, idempotency_key=key)
    return Execution.objects.get(intent=intent)


def step_of(execution_, key="a"):
    return StepRun.objects.select_related("step").get(execution=execution_, step__key=key)


def test_broker_down_the_intent_is_accepted_and_the_step_waits_in_the_outbox(
    operator, client, django_capture_on_commit_callbacks, caplog
):
    token = token_for(operator)
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True):
        started = time.monotonic()
        response = client.post(
            "/api/v1/intents/",
            DRAFT,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_IDEMPOTENCY_KEY="k-1",
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 201, response.content
    assert elapsed < 10  # fails fast enough to answer the request (bounded publish retries)
    run_ = Execution.objects.get(pk=response.json()["execution"])
    step = step_of(run_)
    assert (run_.status, step.status) == ("running", "ready")
    assert step.dispatched_at is not None and step.enqueued_at is None
    assert queued_step_run_ids() == []
    assert "BROKER_UNAVAILABLE" in caplog.text
    assert LedgerEvent.objects.filter(
        type="controlplane.execution.started", subject=f"execution/{run_.id}"
    ).exists()


def test_the_sweeper_publishes_the_outbox_when_the_broker_returns(
    operator, django_capture_on_commit_callbacks
):
    run_ = in_outbox(operator, django_capture_on_commit_callbacks)
    step = step_of(run_)
    later = timezone.now() + timedelta(seconds=services.OUTBOX_GRACE_SECONDS + 1)
    assert services.step_runs_sweep(now=timezone.now()) == {
        "requeued": 0,
        "failed": 0,
        "published": 0,
        "deferred": 0,
        "resumed": 0,
        "held_failed": 0,
    }  # within the grace the on-commit publish owns it
    with broker_unreachable():
        assert services.step_runs_sweep(now=later)["deferred"] == 1  # still down: still in the outbox
    step.refresh_from_db()
    assert step.enqueued_at is None and queued_step_run_ids() == []
    assert services.step_runs_sweep(now=later)["published"] == 1
    step.refresh_from_db()
    assert step.enqueued_at is not None and queued_step_run_ids() == [step.pk]
    # what the worker then does with it
    with django_capture_on_commit_callbacks(execute=True):
        services.step_run_execute(step_run_id=step.pk)
    step.refresh_from_db()
    # (a real worker would have taken a's task off the queue; b's follows it there)
    assert step.status == "completed" and queued_step_run_ids() == [step_of(run_, "b").pk, step.pk]
    # once published, the same step is not published again by the next sweep
    assert services.step_runs_sweep(now=later)["published"] == 0


def test_a_task_the_broker_lost_is_published_again(operator, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        intent = services.intent_submit(principal=operator, draft=DRAFT, idempotency_key="k-1")
    step = step_of(Execution.objects.get(intent=intent))
    assert step.enqueued_at is not None and queued_step_run_ids() == [step.pk]
    redis.Redis.from_url(settings.REDIS_URL).delete("celery")  # the broker restarted without persistence
    stale = step.enqueued_at + timedelta(seconds=settings.CONTROLPLANE_STEP_REDISPATCH_AFTER_SECONDS + 1)
    assert services.step_runs_sweep(now=step.enqueued_at + timedelta(seconds=30))["published"] == 0
    assert services.step_runs_sweep(now=stale)["published"] == 1
    assert queued_step_run_ids() == [step.pk]


def start_and_die(step_run_id: int) -> StepRun:
    """A worker claims the step (lease taken) and dies before finishing."""
    assert steps._claim(step_run_id) is not None
    return StepRun.objects.get(pk=step_run_id)


def test_a_step_whose_worker_died_is_sent_again_with_the_same_key(
    operator, django_capture_on_commit_callbacks
):
    run_ = in_outbox(operator, django_capture_on_commit_callbacks)
    step = start_and_die(step_of(run_).pk)
    assert step.status == "running" and step.lease_expires_at > timezone.now()
    assert services.step_runs_sweep()["requeued"] == 0  # the lease still holds
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.step_runs_sweep(now=step.lease_expires_at + timedelta(seconds=1))
    assert counts["requeued"] == 1
    step.refresh_from_db()
    assert (step.status, step.attempts, step.lease_expires_at) == ("ready", 1, None)
    assert step.attempt_log[0]["result"] == "lost" and step.attempt_log[0]["code"] == "STEP_LEASE_EXPIRED"
    requeued = LedgerEvent.objects.get(type="controlplane.execution.step.requeued")
    assert requeued.reason_codes == ["STEP_LEASE_EXPIRED"]
    assert requeued.data["execution_key"] == step.step.execution_key and requeued.data["attempt"] == 1
    assert queued_step_run_ids() == [step.pk]
    with django_capture_on_commit_callbacks(execute=True):
        services.step_run_execute(step_run_id=step.pk)
    step.refresh_from_db()
    assert (step.status, step.attempts) == ("completed", 2)
    assert step.outcome["execution_key"] == step.step.execution_key


def test_the_late_result_of_a_lost_attempt_is_discarded(operator, django_capture_on_commit_callbacks):
    run_ = in_outbox(operator, django_capture_on_commit_callbacks)
    step = start_and_die(step_of(run_).pk)
    services.step_runs_sweep(now=step.lease_expires_at + timedelta(seconds=1))
    start_and_die(step.pk)  # attempt 2 holds the lease now
    before = LedgerEvent.objects.count()
    steps._finish(step.pk, 1, {"late": True}, None)  # the first worker was only slow, and comes back
    step.refresh_from_db()
    assert (step.status, step.attempts, step.outcome) == ("running", 2, {})
    assert LedgerEvent.objects.count() == before


def test_a_step_lost_on_its_last_attempt_fails_the_execution(
    operator, settings, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_STEP_MAX_ATTEMPTS = 1
    run_ = in_outbox(operator, django_capture_on_commit_callbacks)
    step = start_and_die(step_of(run_).pk)
    assert services.step_runs_sweep(now=step.lease_expires_at + timedelta(seconds=1))["failed"] == 1
    step.refresh_from_db()
    run_.refresh_from_db()
    assert step.reason_codes == ["STEP_LEASE_EXPIRED", "STEP_RETRY_EXHAUSTED"]
    assert (run_.status, run_.reason_codes) == ("failed", ["STEP_LEASE_EXPIRED", "STEP_RETRY_EXHAUSTED"])
    assert step_of(run_, "b").status == "cancelled" and queued_step_run_ids() == []


def test_a_lost_step_of_a_cancelled_execution_is_not_sent_again(operator, django_capture_on_commit_callbacks):
    run_ = in_outbox(operator, django_capture_on_commit_callbacks)
    step = start_and_die(step_of(run_).pk)
    services.execution_cancel(execution=run_, actor=operator, reason="stop")
    counts = services.step_runs_sweep(now=step.lease_expires_at + timedelta(seconds=1))
    step.refresh_from_db()
    assert counts["failed"] == 1 and step.reason_codes == ["STEP_LEASE_EXPIRED"]
    assert queued_step_run_ids() == []


def test_the_sweeper_changes_nothing_when_run_twice(operator, django_capture_on_commit_callbacks):
    run_ = in_outbox(operator, django_capture_on_commit_callbacks)
    step = start_and_die(step_of(run_).pk)
    later = step.lease_expires_at + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.step_runs_sweep(now=later)
    before = LedgerEvent.objects.count()
    assert services.step_runs_sweep(now=later)["requeued"] == 0
    assert LedgerEvent.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_lease_while_the_executor_works(operator, settings):
    core_skill_installed()
    settings.CONTROLPLANE_STEP_LEASE_SECONDS = 0.6
    with broker_unreachable():
        intent = services.intent_submit(principal=operator, draft=DRAFT, idempotency_key="k-1")
    step = start_and_die(step_of(Execution.objects.get(intent=intent)).pk)
    first = step.lease_expires_at
    with steps._Heartbeat(step.pk, step.attempts):
        time.sleep(0.9)  # longer than the lease itself
    step.refresh_from_db()
    assert step.lease_expires_at > first + timedelta(seconds=0.2)
    assert services.step_runs_sweep(now=timezone.now())["requeued"] == 0


def test_steps_sweep_command(operator, django_capture_on_commit_callbacks):
    in_outbox(operator, django_capture_on_commit_callbacks)
    out = StringIO()
    call_command("steps", "sweep", stdout=out)
    # within the grace
    assert out.getvalue() == "requeued=0 failed=0 published=0 deferred=0 resumed=0 held_failed=0\n"
