"""Dispatch gates: a registered gate holds a cleared step (visible, ledgered), and it goes on when the hold
clears -- by itself for an auto-resuming gate, only by a person's act otherwise -- or fails past a limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from controlplane.policy import services as policy
from controlplane.runtime import gates, services
from controlplane.runtime.models import Execution
from controlplane.runtime.replay import replay_verify
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def agent():
    policy.profile_bootstrap(environment="dev")
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="deploy-agent", agent=True)


class Switchable:
    """A gate whose condition the test flips: holds steps of the action it names while `down`."""

    def __init__(self, name, *, auto_resume=True, fail_after=None):
        self.down = True
        self.gate = gates.DispatchGate(
            name=name, check=self.check, auto_resume=auto_resume, fail_after=lambda: fail_after
        )

    def check(self, run):
        if self.down and run.step.inputs.get("message") == "gated":
            return gates.Hold(code="PLUGIN_UNHEALTHY", detail="waiting for plugin test-runner", data={"x": 1})
        return None


@pytest.fixture
def gate(monkeypatch):
    def make(name="test-gate", **kwargs):
        switchable = Switchable(name, **kwargs)
        monkeypatch.setitem(gates._GATES, name, switchable.gate)
        return switchable

    return make


def draft():
    return {
        "goal": "one free step, one gated",
        "steps": [
            {"key": "a", "action": "noop.echo", "inputs": {"message": "free"}},
            {"key": "b", "action": "noop.echo", "inputs": {"message": "gated"}, "depends_on": ["a"]},
        ],
    }


def run(agent, capture, key="k-1"):
    with capture(execute=True):
        intent = services.intent_submit(principal=agent, draft=draft(), idempotency_key=key)
    return Execution.objects.get(intent=intent)


def statuses(execution):
    return {r.step.key: r.status for r in execution.step_runs.select_related("step")}


def types(execution):
    return list(
        LedgerEvent.objects.filter(subject=f"execution/{execution.id}").values_list("type", flat=True)
    )


def test_a_held_step_waits_with_its_code_and_the_execution_keeps_running(
    agent, gate, django_capture_on_commit_callbacks
):
    gate()
    execution = run(agent, django_capture_on_commit_callbacks)
    execution.refresh_from_db()
    assert execution.status == "running"
    assert statuses(execution) == {"a": "completed", "b": "held"}
    held = execution.step_runs.get(step__key="b")
    assert (held.held_gate, held.held_code, held.held_detail) == (
        "test-gate",
        "PLUGIN_UNHEALTHY",
        "waiting for plugin test-runner",
    )
    assert held.dispatched_at is None and held.started_at is None
    event = LedgerEvent.objects.get(type="controlplane.execution.step.held")
    assert event.reason_codes == ["PLUGIN_UNHEALTHY"]
    assert event.data["gate"] == "test-gate" and event.data["hold"] == {"x": 1}
    # The sweeper re-checks; the condition still holds: nothing changes, nothing is written.
    before = LedgerEvent.objects.count()
    assert services.held_steps_recheck() == {"resumed": 0, "held_failed": 0}
    assert LedgerEvent.objects.count() == before
    assert replay_verify().differences == []


def test_an_auto_resuming_gate_lets_the_step_go_once_it_clears(
    agent, gate, django_capture_on_commit_callbacks
):
    switchable = gate()
    execution = run(agent, django_capture_on_commit_callbacks)
    switchable.down = False
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.step_runs_sweep()
    assert counts["resumed"] == 1
    execution.refresh_from_db()
    assert execution.status == "completed" and statuses(execution) == {"a": "completed", "b": "completed"}
    assert types(execution)[-5:] == [
        "controlplane.execution.step.held",
        "controlplane.execution.step.resumed",
        "controlplane.execution.step.started",
        "controlplane.execution.step.completed",
        "controlplane.execution.completed",
    ]
    resumed = LedgerEvent.objects.get(type="controlplane.execution.step.resumed")
    assert resumed.actor == "system" and resumed.reason_codes == ["PLUGIN_UNHEALTHY"]
    assert verify_chain().ok
    assert replay_verify().differences == []


def test_a_gate_without_auto_resume_resumes_only_by_a_persons_act(
    agent, gate, django_capture_on_commit_callbacks
):
    switchable = gate(auto_resume=False)
    execution = run(agent, django_capture_on_commit_callbacks)
    switchable.down = False
    assert services.step_runs_sweep()["resumed"] == 0  # cleared, but nobody chose to run it
    assert statuses(execution)["b"] == "held"
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.held_steps_recheck(
            gate="test-gate", actor="human/alice", reason="drill over, resume", manual=True
        )
    assert counts == {"resumed": 1, "held_failed": 0}
    execution.refresh_from_db()
    assert execution.status == "completed"
    resumed = LedgerEvent.objects.get(type="controlplane.execution.step.resumed")
    assert (resumed.actor, resumed.data["reason"]) == ("human/alice", "drill over, resume")


def test_a_step_held_past_its_gates_limit_is_blocked_with_the_holds_code(
    agent, gate, django_capture_on_commit_callbacks
):
    gate(fail_after=timedelta(minutes=5))
    execution = run(agent, django_capture_on_commit_callbacks)
    assert services.held_steps_recheck(now=timezone.now() + timedelta(minutes=1))["held_failed"] == 0
    assert services.held_steps_recheck(now=timezone.now() + timedelta(minutes=6))["held_failed"] == 1
    execution.refresh_from_db()
    assert execution.status == "failed" and execution.reason_codes == ["PLUGIN_UNHEALTHY"]
    assert statuses(execution)["b"] == "blocked"
    assert replay_verify().differences == []


def test_a_step_dispatched_before_the_hold_is_held_by_the_worker_instead_of_run(
    agent, gate, django_capture_on_commit_callbacks
):
    switchable = gate()
    switchable.down = False
    with django_capture_on_commit_callbacks(execute=False):  # cleared and dispatched, not yet published
        intent = services.intent_submit(
            principal=agent,
            draft={
                "goal": "g",
                "steps": [{"key": "b", "action": "noop.echo", "inputs": {"message": "gated"}}],
            },
            idempotency_key="k-2",
        )
    execution = Execution.objects.get(intent=intent)
    step = execution.step_runs.get()
    assert step.status == "ready" and step.dispatched_at is not None
    switchable.down = True  # the plugin crashed between dispatch and the worker's claim
    services.step_publish(step_run_id=step.pk)
    step.refresh_from_db()
    assert step.status == "held" and step.started_at is None and step.dispatched_at is None
    switchable.down = False
    with django_capture_on_commit_callbacks(execute=True):
        assert services.held_steps_recheck()["resumed"] == 1
    step.refresh_from_db()
    assert step.status == "completed" and step.attempts == 1


def test_cancelling_an_execution_cancels_its_held_steps(agent, gate, django_capture_on_commit_callbacks):
    gate()
    execution = run(agent, django_capture_on_commit_callbacks)
    alice = PrincipalFactory(tenant=execution.tenant, name="alice")
    services.execution_cancel(execution=execution, actor=alice, reason="not needed")
    assert statuses(execution)["b"] == "cancelled"
    assert services.held_steps_recheck() == {"resumed": 0, "held_failed": 0}


def test_a_gate_registered_twice_with_another_check_is_refused():
    first = gates.DispatchGate(name="dup", check=lambda run: None)
    try:
        gates.register_dispatch_gate(first)
        with pytest.raises(ValueError, match="registered twice"):
            gates.register_dispatch_gate(gates.DispatchGate(name="dup", check=lambda run: None))
    finally:
        gates._GATES.pop("dup", None)
