"""The executor registry: a plugin or a skill provides executors by name, without editing the runtime."""

from __future__ import annotations

import pytest

from controlplane.celery import app as celery_app
from controlplane.policy import services as policy
from controlplane.runtime import executors, services
from controlplane.runtime.models import Execution, StepRun
from skills.models import ActionContract
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.skills.support import unsigned_skill

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def registry():
    """The registry as the app left it, restored after the test."""
    before = dict(executors._EXECUTORS)
    yield
    executors._EXECUTORS.clear()
    executors._EXECUTORS.update(before)


@pytest.fixture
def agent():
    policy.profile_bootstrap(environment="dev")
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="deploy-agent", agent=True)


def action(name: str, executor: str) -> None:
    skill = unsigned_skill(name=name.split(".")[0])
    ActionContract.objects.create(
        skill=skill,
        name=name,
        version="1.0.0",
        input_schema={"type": "object"},
        output_schema={"type": "object", "required": ["shouted"]},
        risk_tier="low",
        executor=executor,
    )


def run_step(agent, name: str, capture) -> StepRun:
    draft = {"goal": "shout", "steps": [{"key": "a", "action": name, "inputs": {"message": "hi"}}]}
    with capture(execute=True):
        intent = services.intent_submit(principal=agent, draft=draft, idempotency_key=f"k-{name}")
    return StepRun.objects.get(execution=Execution.objects.get(intent=intent))


def test_the_builtins_are_registered_when_the_app_is_ready():
    assert executors.executor_for("noop.echo") is executors.noop_echo
    assert executors.executor_for("http.webhook") is executors.http_webhook


def test_a_registered_executor_runs_the_steps_of_its_actions(
    registry, agent, django_capture_on_commit_callbacks
):
    calls = []

    def shout(call: executors.StepCall) -> dict:
        calls.append(call.execution_key)
        return {"shouted": call.inputs["message"].upper()}

    executors.register_executor("test.shout", shout)
    action("loud.shout", "test.shout")
    step = run_step(agent, "loud.shout", django_capture_on_commit_callbacks)
    assert (step.status, step.outcome) == ("completed", {"shouted": "HI"})
    assert calls == [step.step.execution_key]


def test_an_unknown_executor_refuses_the_step(registry, agent, django_capture_on_commit_callbacks):
    action("loud.shout", "test.nobody")
    step = run_step(agent, "loud.shout", django_capture_on_commit_callbacks)
    assert (step.status, step.reason_codes) == ("failed", ["EXECUTOR_UNAVAILABLE"])
    assert step.outcome["error"]["code"] == "EXECUTOR_UNAVAILABLE"


def test_registering_a_name_twice_with_another_implementation_raises(registry):
    def one(call: executors.StepCall) -> dict:
        return {}

    def other(call: executors.StepCall) -> dict:
        return {}

    executors.register_executor("test.once", one)
    executors.register_executor("test.once", one)  # the same one again (a second ready()) is harmless
    with pytest.raises(ValueError, match=r"'test\.once' is already registered"):
        executors.register_executor("test.once", other)
    with pytest.raises(ValueError, match=r"'noop\.echo' is already registered"):
        executors.register_executor("noop.echo", other)
    assert executors.executor_for("test.once") is one
