"""A worker whose database connection is lost while the executor runs (PostgreSQL restarted mid-step)
reconnects by itself and records the outcome once, instead of leaving the step to the lease."""

from __future__ import annotations

import pytest
from django.db import connection

from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from controlplane.runtime import executors, services
from controlplane.runtime.models import Execution, StepRun
from tests.runtime.support import core_skill_installed
from tests.runtime.test_executors import action, agent, registry  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_a_connection_lost_during_the_step_is_reopened_and_the_outcome_recorded_once(
    registry,  # noqa: F811
    agent,  # noqa: F811
    monkeypatch,
):
    core_skill_installed()
    monkeypatch.setattr(services.steps, "FINISH_RECONNECT_DELAYS", (0.0, 0.0))
    calls = []

    def shout_then_lose_the_connection(call: executors.StepCall) -> dict:
        calls.append(call.execution_key)
        connection.connection.close()  # the server went away under this thread's connection
        return {"shouted": call.inputs["message"].upper()}

    executors.register_executor("test.lossy", shout_then_lose_the_connection)
    action("loud.shout", "test.lossy")
    draft = {"goal": "shout", "steps": [{"key": "a", "action": "loud.shout", "inputs": {"message": "hi"}}]}

    intent = services.intent_submit(principal=agent, draft=draft, idempotency_key="k-lossy")

    execution = Execution.objects.get(intent=intent)
    step = StepRun.objects.get(execution=execution)
    assert (step.status, step.outcome) == ("completed", {"shouted": "HI"})
    assert execution.status == "completed"
    assert len(calls) == 1
    completed = LedgerEvent.objects.filter(
        type="controlplane.execution.step.completed", subject=f"execution/{execution.id}"
    )
    assert completed.count() == 1
    assert verify_chain().ok
