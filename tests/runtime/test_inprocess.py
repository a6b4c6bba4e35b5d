"""The quickstart without a broker: steps run in-process and the beat schedule runs on requests."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.inprocess import forget_periodic_runs, run_due_periodic_work
from controlplane.runtime.models import Execution, StepRun
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.runtime.support import local_runner

pytestmark = pytest.mark.django_db

PROD_RESTART = {
    "goal": "restart in prod",
    "steps": [
        {
            "key": "a",
            "action": "http.webhook",
            "inputs": {"runner": "ops", "operation": "echo", "target": {"environment": "prod"}},
        }
    ],
}


@pytest.fixture(autouse=True)
def quickstart(settings):
    """What `make run` has: no broker, so tasks run eagerly and periodic work runs in the web process."""
    settings.CONTROLPLANE_INPROCESS_PERIODIC = True
    celery_app.conf.task_always_eager = True
    forget_periodic_runs()
    yield
    forget_periodic_runs()
    celery_app.conf.task_always_eager = False


@pytest.fixture
def operator():
    policy.profile_bootstrap(environment="dev")
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="ops-bot")


def test_a_request_runs_the_overdue_approval_expiry(operator, client):
    two_days_ago = timezone.now() - timedelta(days=2)
    intent = services.intent_submit(
        principal=operator, draft=PROD_RESTART, idempotency_key="k-1", at=two_days_ago
    )  # high in dev: people must approve within a day
    request = ApprovalRequest.objects.get()
    assert request.status == "pending" and request.expires_at < timezone.now()
    assert client.get("/healthz").status_code == 200
    request.refresh_from_db()
    execution = Execution.objects.get(intent=intent)
    assert request.status == "expired"
    assert (execution.status, execution.reason_codes) == ("failed", ["APPROVAL_EXPIRED"])


def test_each_entry_runs_at_most_once_per_its_period():
    first = run_due_periodic_work(now=1000.0)
    assert first == [
        "approvals-sweep",  # 30 s
        "channels-outbox-sweep",  # 10 s
        "channels-refusals-digest",  # 1 h
        "learning-calibrate",  # a day
        "ledger-checkpoint",  # 5 min
        "plugins-supervise",  # 5 s
        "runtime-sweep",  # 15 s
    ]
    assert run_due_periodic_work(now=1001.0) == []
    assert run_due_periodic_work(now=1000.0 + 31) == [
        "approvals-sweep",
        "channels-outbox-sweep",
        "plugins-supervise",
        "runtime-sweep",
    ]


def test_a_retry_runs_on_a_later_request_once_its_backoff_passed(
    operator, client, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS = 0.2
    draft = {
        "goal": "flaky once",
        "steps": [
            {
                "key": "a",
                "action": "http.webhook",
                "inputs": {"runner": "ops", "operation": "flaky", "payload": {"failures": 1}},
            }
        ],
    }
    with local_runner(tmp_path) as served:
        settings.CONTROLPLANE_RUNNER_SECRET = served.secret
        client.get("/healthz")  # the periodic work ran once (nothing to do yet)
        with django_capture_on_commit_callbacks(execute=True):
            intent = services.intent_submit(principal=operator, draft=draft, idempotency_key="k-1")
        step = StepRun.objects.get(execution__intent=intent)
        assert (step.status, step.attempts) == ("ready", 1)  # the retry waits; nothing runs it inline
        time.sleep(0.3)
        forget_periodic_runs()  # as if the sweeper's period had passed
        client.get("/healthz")
    step.refresh_from_db()
    assert (step.status, step.attempts) == ("completed", 2)
    assert Execution.objects.get(intent=intent).status == "completed"


def test_with_a_broker_the_web_process_runs_no_periodic_work(operator, client, settings):
    settings.CONTROLPLANE_INPROCESS_PERIODIC = False
    services.intent_submit(
        principal=operator, draft=PROD_RESTART, idempotency_key="k-1", at=timezone.now() - timedelta(days=2)
    )
    client.get("/healthz")
    assert ApprovalRequest.objects.get().status == "pending"  # beat's job, not the web's
