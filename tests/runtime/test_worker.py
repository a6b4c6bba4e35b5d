"""Against real Celery worker processes: a worker killed mid-step, the broker down, the kill switch.

Each test starts `celery -A controlplane worker` (tests/runtime/support.py) on the test database and this
run's Redis index, and the reference runner on a loopback port in this process, which outlives the worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution, StepRun
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.runtime.support import (
    Worker,
    broker_unreachable,
    core_skill_installed,
    local_runner,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator():
    core_skill_installed()
    policy.profile_bootstrap(environment="dev")  # also makes this test's ledger key, which workers load
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="ops-bot")


@pytest.fixture
def runner(tmp_path, settings):
    with local_runner(tmp_path) as served:
        settings.CONTROLPLANE_RUNNER_SECRET = served.secret
        yield served


@pytest.fixture
def workers(tmp_path, runner):
    started: list[Worker] = []

    def start(**env: str) -> Worker:
        worker = Worker(tmp_path, env=worker_env(runner_secret=runner.secret, **env)).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def submit(operator, *steps, key="k-1"):
    intent = services.intent_submit(
        principal=operator, draft={"goal": "worker test", "steps": list(steps)}, idempotency_key=key
    )
    return Execution.objects.get(intent=intent)


def finished(execution_: Execution, timeout: float = 60) -> Execution:
    def done():
        execution_.refresh_from_db()
        return execution_.status != "running"

    wait_for(done, timeout=timeout, what=f"execution {execution_.id[:12]} to finish")
    return execution_


def step_of(execution_, key="a"):
    return StepRun.objects.select_related("step").get(execution=execution_, step__key=key)


APPEND = {
    "key": "a",
    "action": "http.webhook",
    "inputs": {
        "runner": "ops",
        "operation": "append",
        "payload": {"file": "effects.log", "line": "restart checkout", "delay_ms": 3000},
    },
}
THEN_ECHO = {"key": "b", "action": "noop.echo", "inputs": {"message": "after"}, "depends_on": ["a"]}


def test_a_worker_killed_mid_step_the_effect_happens_once_and_the_execution_completes(
    operator, runner, workers
):
    doomed = workers(CONTROLPLANE_STEP_LEASE_SECONDS="2")
    run_ = submit(operator, APPEND, THEN_ECHO)
    wait_for(lambda: runner.runner.verified >= 1, timeout=60, what="the runner to receive step a")
    step = step_of(run_)
    assert (step.status, step.attempts) == ("running", 1)

    doomed.kill()  # SIGKILL the whole process group mid-step: the runner is still performing the effect

    step.refresh_from_db()
    assert step.status == "running"  # nobody recorded anything: the worker died
    workers(CONTROLPLANE_STEP_LEASE_SECONDS="2")

    def lease_expired():
        step.refresh_from_db()
        return step.lease_expires_at < timezone.now()

    wait_for(lease_expired, timeout=30, what="the dead worker's lease to expire")
    assert services.step_runs_sweep()["requeued"] == 1

    assert finished(run_).status == "completed"
    assert runner.lines("effects.log") == ["restart checkout"]  # exactly once
    assert runner.runner.verified == 2  # delivered twice, performed once
    step.refresh_from_db()
    assert step.attempts == 2
    assert [(e["attempt"], e["result"]) for e in step.attempt_log] == [(1, "lost"), (2, "completed")]
    assert step.outcome["result"] == {"file": "effects.log", "line": "restart checkout", "lines": 1}
    assert step_of(run_, "b").status == "completed"
    subject = f"execution/{run_.id}"
    assert LedgerEvent.objects.get(
        type="controlplane.execution.step.requeued", subject=subject
    ).reason_codes == ["STEP_LEASE_EXPIRED"]
    completed = LedgerEvent.objects.filter(type="controlplane.execution.step.completed", subject=subject)
    assert [e.data["step"] for e in completed.order_by("seq")] == ["a", "b"]


def test_broker_down_nothing_is_lost_and_the_step_runs_when_it_returns(operator, runner, workers):
    workers()
    with broker_unreachable():
        run_ = submit(
            operator, {**APPEND, "inputs": {**APPEND["inputs"], "payload": {"file": "e.log", "line": "x"}}}
        )
    step = step_of(run_)
    assert (run_.status, step.status, step.enqueued_at) == ("running", "ready", None)
    assert runner.runner.verified == 0
    later = timezone.now() + timedelta(seconds=services.OUTBOX_GRACE_SECONDS + 1)
    assert services.step_runs_sweep(now=later)["published"] == 1
    assert finished(run_).status == "completed"
    assert runner.lines("e.log") == ["x"]


def test_the_kill_switch_reaches_a_running_worker_within_one_second(operator, runner, workers):
    """Product requirement (architecture.md, invariant 9): once engaged, no step starts anywhere after 1 s.

    The worker is warmed first (it ran a step with the switch released). A second step passes the
    dispatch-time check and waits in the outbox; the switch is engaged; then the step is handed to the
    worker, which must hold it (not run it, not fail it). The interval from engagement to the hold is
    measured. Released with "resume", the held step runs.
    """
    workers()
    echo = {"key": "a", "action": "noop.echo", "inputs": {"message": "hi"}}
    assert finished(submit(operator, echo, key="warm")).status == "completed"
    with broker_unreachable():
        held = submit(operator, echo, key="held")
    held_step = step_of(held)
    assert held_step.status == "ready" and held_step.dispatched_at is not None  # dispatch check passed

    switch = services.killswitch_set(
        scope="action", target="noop.echo", engaged=True, reason="drill", actor="test/operator"
    )
    assert services.step_publish(step_run_id=held_step.pk)  # reaches the worker right after engaging

    def held_by_the_worker():
        held_step.refresh_from_db()
        return held_step.status == "held"

    wait_for(held_by_the_worker, timeout=60, what="the worker to hold the step")
    refused_after = (held_step.held_since - switch.changed_at).total_seconds()
    print(f"kill switch engaged -> held in the worker: {refused_after * 1000:.0f} ms")
    assert (held_step.held_gate, held_step.held_code) == ("killswitch", "KILL_SWITCH_ENGAGED")
    assert held_step.attempts == 0
    assert not LedgerEvent.objects.filter(
        type="controlplane.execution.step.started", subject=f"execution/{held.id}"
    ).exists()
    assert refused_after < 1.0

    # Released with "resume": the held step goes to the worker now, as the person's act.
    services.killswitch_set(
        scope="action",
        target="noop.echo",
        engaged=False,
        reason="over",
        actor="test/operator",
        held="resume",
    )
    assert finished(held).status == "completed"
    assert finished(submit(operator, echo, key="after")).status == "completed"  # released: no restart either
