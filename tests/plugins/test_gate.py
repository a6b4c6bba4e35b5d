"""The plugins dispatch gate: a step whose runner a plugin provides waits (held, PLUGIN_UNHEALTHY) while
the plugin is not healthy -- unknown included -- never reaches the runner, and resumes on recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services as runtime
from controlplane.runtime.models import Execution, StepRun
from controlplane.runtime.replay import replay_verify
from plugins.services import plugin_quarantine, plugins_supervise
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.plugins.support import register
from tests.runtime.support import local_runner

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def operator():
    policy.profile_bootstrap(environment="dev")
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="ops-bot")


@pytest.fixture
def served(tmp_path, settings, operator):
    with local_runner(tmp_path) as runner:
        settings.CONTROLPLANE_RUNNER_SECRET = runner.secret
        yield runner


def submit(principal, capture, key="k-1", line="one"):
    step = {
        "key": "a",
        "action": "http.webhook",
        "inputs": {"runner": "ops", "operation": "append", "payload": {"file": "out.txt", "line": line}},
    }
    with capture(execute=True):
        intent = runtime.intent_submit(
            principal=principal, draft={"goal": "g", "steps": [step]}, idempotency_key=key
        )
    return StepRun.objects.select_related("execution").get(execution__intent=intent)


def test_a_step_for_an_unknown_runner_plugin_is_held_and_resumes_when_it_is_healthy(
    operator, served, django_capture_on_commit_callbacks
):
    runner = register("ops-runner", tenant=operator.tenant, provides={"runners": ["ops"]})
    step = submit(operator, django_capture_on_commit_callbacks)
    assert (step.status, step.held_gate, step.held_code) == ("held", "plugins", "PLUGIN_UNHEALTHY")
    assert step.held_detail == "waiting for plugin ops-runner (unknown)"
    assert served.lines("out.txt") == [] and served.runner.verified == 0  # it never reached the runner
    held = LedgerEvent.objects.get(type="controlplane.execution.step.held")
    assert held.data["hold"]["plugin"] == "ops-runner" and held.data["hold"]["state"] == "unknown"
    now = timezone.now() + timedelta(seconds=1)
    runner.beat(at=now)
    with django_capture_on_commit_callbacks(execute=True):  # becoming healthy re-checks the held steps
        plugins_supervise(now=now + timedelta(seconds=1))
    step.refresh_from_db()
    assert step.status == "completed" and served.lines("out.txt") == ["one"]
    assert Execution.objects.get(pk=step.execution_id).status == "completed"
    assert replay_verify().differences == []


def test_a_quarantined_runner_plugin_holds_its_steps_and_only_its_tenants_and_shared_ones_gate(
    operator, served, django_capture_on_commit_callbacks
):
    runner = register("ops-runner", tenant=operator.tenant, provides={"runners": ["ops"]})
    now = timezone.now() + timedelta(seconds=1)
    runner.beat(at=now)
    plugins_supervise(now=now + timedelta(seconds=1))
    first = submit(operator, django_capture_on_commit_callbacks, key="k-1")
    assert first.status == "completed"
    alice = PrincipalFactory(tenant=operator.tenant, name="alice", human=True)
    plugin_quarantine(name="ops-runner", actor=alice, reason="bad deploy")
    second = submit(operator, django_capture_on_commit_callbacks, key="k-2", line="two")
    assert (second.status, second.held_detail) == ("held", "waiting for plugin ops-runner (quarantined)")
    # The sweeper re-checks: still quarantined, still held, and nothing reached the runner.
    with django_capture_on_commit_callbacks(execute=True):
        runtime.step_runs_sweep()
    second.refresh_from_db()
    assert second.status == "held" and served.lines("out.txt") == ["one"]
    # Another tenant's plugin of the same runner name does not exist (provisions are unique): a tenant
    # without a plugin for this runner is not gated by acme's.
    globex = PrincipalFactory(tenant=TenantFactory(slug="globex"), name="bot")
    from controlplane.runtime.runners import runner_grant

    runner_grant(name="ops", tenant=globex.tenant, actor="test")
    third = submit(globex, django_capture_on_commit_callbacks, key="k-3", line="three")
    assert third.status == "completed" and served.lines("out.txt") == ["one", "three"]


def test_a_step_held_too_long_is_blocked_with_the_plugins_code(
    operator, served, settings, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_PLUGIN_HOLD_FAIL_AFTER_SECONDS = 60
    register("ops-runner", tenant=operator.tenant, provides={"runners": ["ops"]})
    step = submit(operator, django_capture_on_commit_callbacks)
    runtime.held_steps_recheck(gate="plugins", now=timezone.now() + timedelta(seconds=61))
    step.refresh_from_db()
    assert step.status == "blocked" and served.lines("out.txt") == []
    assert Execution.objects.get(pk=step.execution_id).reason_codes == ["PLUGIN_UNHEALTHY"]
