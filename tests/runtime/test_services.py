"""The governed action flow through the services, with Celery tasks run in-process at commit."""

from __future__ import annotations

import copy

import pytest

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution, Intent, StepRun
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db

LOW_ASSIST = {
    "tiers": {
        "low": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600},
        "medium": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600},
        "high": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600},
        "critical": {"mode": "assist", "quorum": 2, "approval_timeout_seconds": 600},
    },
    "rules": [],
    "deny": [{"id": "no-echo", "when": {"action": "noop.echo"}, "reason": "POLICY_DENY_DANGEROUS_ACTION"}],
}


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def dev_policy():
    return policy.profile_bootstrap(environment="dev")


@pytest.fixture
def agent():
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="deploy-agent", agent=True)


def three_steps():
    return {
        "goal": "echo three times",
        "context": {"ticket": "OPS-7"},
        "steps": [
            {"key": "a", "action": "noop.echo", "inputs": {"message": "one"}},
            {"key": "b", "action": "noop.echo", "inputs": {"message": "two"}, "depends_on": ["a"]},
            {"key": "c", "action": "noop.echo", "inputs": {"message": "three"}, "depends_on": ["a", "b"]},
        ],
    }


def submit(principal, draft=None, key="k-1", capture=None):
    draft = draft or three_steps()
    if capture is None:
        return services.intent_submit(principal=principal, draft=draft, idempotency_key=key)
    with capture(execute=True):
        return services.intent_submit(principal=principal, draft=draft, idempotency_key=key)


def types_for(execution):
    return list(
        LedgerEvent.objects.filter(subject=f"execution/{execution.id}").values_list("type", flat=True)
    )


def test_an_autonomous_plan_runs_to_completion_in_dependency_order(
    dev_policy, agent, django_capture_on_commit_callbacks
):
    intent = submit(agent, capture=django_capture_on_commit_callbacks)
    execution = Execution.objects.get(intent=intent)
    assert execution.status == "completed"
    assert (
        execution.profile_name == "control-plane-dev-v1" and execution.profile_hash == dev_policy.content_hash
    )
    runs = list(execution.step_runs.order_by("step__position"))
    assert [(r.step.key, r.status, r.verdict) for r in runs] == [
        ("a", "completed", "allow"),
        ("b", "completed", "allow"),
        ("c", "completed", "allow"),
    ]
    assert runs[1].outcome == {"echo": {"message": "two"}, "execution_key": runs[1].step.execution_key}
    assert types_for(execution) == [
        "controlplane.plan.verified",
        "controlplane.execution.started",
        "controlplane.execution.step.started",
        "controlplane.execution.step.completed",
        "controlplane.execution.step.started",
        "controlplane.execution.step.completed",
        "controlplane.execution.step.started",
        "controlplane.execution.step.completed",
        "controlplane.execution.completed",
    ]
    trace_ids = set(
        LedgerEvent.objects.filter(subject=f"execution/{execution.id}").values_list("trace_id", flat=True)
    )
    assert trace_ids == {intent.trace_id}


def test_same_idempotency_key_returns_the_same_intent_and_writes_nothing(dev_policy, agent):
    first = submit(agent)
    before = LedgerEvent.objects.count()
    again = submit(agent)
    assert again.pk == first.pk and LedgerEvent.objects.count() == before
    assert (first.created, again.created) == (True, False)


def test_a_rejected_draft_is_created_once_too(dev_policy, agent):
    bad = three_steps()
    bad["steps"][0]["action"] = "no.such"
    assert [submit(agent, draft=bad).created for _ in range(2)] == [True, False]


def test_a_different_draft_under_the_same_key_is_refused_and_writes_nothing(dev_policy, agent):
    submit(agent)
    before = LedgerEvent.objects.count()
    changed = three_steps()
    changed["goal"] = "something else"
    with pytest.raises(ControlPlaneError) as caught:
        submit(agent, draft=changed)
    assert caught.value.code == "IDEMPOTENCY_KEY_CONFLICT" and LedgerEvent.objects.count() == before


def test_a_rejected_draft_is_recorded_with_its_reason_code(dev_policy, agent):
    bad = three_steps()
    bad["steps"][0]["depends_on"] = ["c"]
    intent = submit(agent, draft=bad)
    assert intent.status == "rejected" and intent.rejection["code"] == "PLAN_CYCLE"
    event = LedgerEvent.objects.get(type="controlplane.plan.rejected")
    assert event.reason_codes == ["PLAN_CYCLE"] and not Execution.objects.exists()


def test_same_draft_same_plan_and_keys(dev_policy, agent):
    one, two = submit(agent, key="k-1"), submit(agent, key="k-2")
    assert one.plan_id == two.plan_id
    assert Execution.objects.get(intent=one).pk != Execution.objects.get(intent=two).pk


def _activate(name, environment, content):
    created = policy.profile_create(name=name, environment=environment, content=content, actor="test")
    return policy.profile_activate(profile=created.profile, actor="test", reason="test profile")


def test_steps_needing_approval_wait_and_run_once_approved(agent, django_capture_on_commit_callbacks):
    content = copy.deepcopy(LOW_ASSIST)
    content["deny"] = []
    _activate("test-assist", "dev", content)
    intent = submit(
        agent, draft={"goal": "one step", "steps": [{"key": "a", "action": "noop.echo", "inputs": {}}]}
    )
    run = StepRun.objects.get(execution__intent=intent)
    assert run.status == "waiting_approval" and run.verdict == "require_approval"
    request = ApprovalRequest.objects.get()
    assert request.summary["step"] == "a" and request.content_hash == services.step_content_hash(run=run)
    alice = PrincipalFactory(tenant=agent.tenant, name="alice", human=True, capabilities=["approvals.decide"])
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_decide(
            approval=request, actor=alice, decision="approve", reason="ok", content_hash=request.content_hash
        )
    run.refresh_from_db()
    request.refresh_from_db()
    assert run.status == "completed" and request.consumed_at is not None
    assert Execution.objects.get(intent=intent).status == "completed"


def test_a_rejected_approval_blocks_the_step_and_fails_the_execution(agent):
    content = copy.deepcopy(LOW_ASSIST)
    content["deny"] = []
    _activate("test-assist", "dev", content)
    intent = submit(agent)
    request = ApprovalRequest.objects.get(
        subject_id=str(StepRun.objects.get(execution__intent=intent, step__key="a").pk)
    )
    alice = PrincipalFactory(tenant=agent.tenant, name="alice", human=True, capabilities=["approvals.decide"])
    approvals.approval_decide(
        approval=request, actor=alice, decision="reject", reason="no", content_hash=request.content_hash
    )
    execution = Execution.objects.get(intent=intent)
    assert execution.status == "failed" and execution.reason_codes == ["APPROVAL_REJECTED"]
    statuses = dict(execution.step_runs.values_list("step__key", "status"))
    assert statuses == {"a": "blocked", "b": "cancelled", "c": "cancelled"}
    assert ApprovalRequest.objects.filter(status="cancelled").count() == 2


def test_in_stage_a_deny_blocks(agent, settings):
    settings.CONTROLPLANE_ENV = "stage"
    _activate("test-stage", "stage", LOW_ASSIST)
    intent = submit(agent)
    execution = Execution.objects.get(intent=intent)
    assert execution.status == "failed" and "POLICY_DENY_DANGEROUS_ACTION" in execution.reason_codes
    assert "controlplane.execution.step.blocked" in types_for(execution)


def test_in_dev_a_deny_is_a_warning_and_the_step_runs(agent, django_capture_on_commit_callbacks):
    _activate(
        "test-dev-deny",
        "dev",
        {**LOW_ASSIST, "tiers": {**LOW_ASSIST["tiers"], "low": {"mode": "autonomous"}}},
    )
    intent = submit(agent, capture=django_capture_on_commit_callbacks)
    run = StepRun.objects.filter(execution__intent=intent).first()
    assert (run.verdict, run.enforced, run.status) == ("deny", False, "completed")


def test_without_a_policy_every_step_is_denied_in_stage(agent, settings):
    settings.CONTROLPLANE_ENV = "stage"
    execution = Execution.objects.get(intent=submit(agent))
    assert execution.status == "failed" and "POLICY_MISSING" in execution.reason_codes


def test_an_engaged_kill_switch_holds_dispatch(dev_policy, agent, django_capture_on_commit_callbacks):
    services.killswitch_set(scope="global", engaged=True, reason="incident 42", actor="acme/alice")
    intent = submit(agent, capture=django_capture_on_commit_callbacks)
    execution = Execution.objects.get(intent=intent)
    assert execution.status == "running" and execution.reason_codes == []
    held = execution.step_runs.get(step__key="a")
    assert (held.status, held.held_gate, held.held_code) == ("held", "killswitch", "KILL_SWITCH_ENGAGED")
    assert held.held_detail == "held by the kill switch (global *: incident 42)"
    assert not LedgerEvent.objects.filter(type="controlplane.execution.step.started").exists()
    # Released without a choice: nothing that was held runs; new work does.
    services.killswitch_set(scope="global", engaged=False, reason="resolved", actor="acme/alice")
    held.refresh_from_db()
    assert held.status == "held"
    again = submit(agent, key="k-after", capture=django_capture_on_commit_callbacks)
    assert Execution.objects.get(intent=again).status == "completed"


def test_the_worker_rechecks_the_kill_switch_before_the_side_effect(dev_policy, agent):
    intent = submit(agent)  # dispatched at commit, which this test never reaches
    run = StepRun.objects.get(execution__intent=intent, step__key="a")
    assert run.status == "ready" and run.dispatched_at is not None
    services.killswitch_set(scope="action", target="noop.echo", engaged=True, reason="bad echo", actor="cli")
    services.step_run_execute(step_run_id=run.pk)
    run.refresh_from_db()
    assert (run.status, run.held_code, run.attempts) == ("held", "KILL_SWITCH_ENGAGED", 0)
    assert not LedgerEvent.objects.filter(type="controlplane.execution.step.started").exists()


def test_running_a_step_twice_does_nothing_the_second_time(dev_policy, agent):
    intent = submit(agent)
    run = StepRun.objects.get(execution__intent=intent, step__key="a")
    services.step_run_execute(step_run_id=run.pk)
    before = LedgerEvent.objects.count()
    services.step_run_execute(step_run_id=run.pk)
    assert LedgerEvent.objects.count() == before


def test_kill_switch_changes_need_a_reason_and_are_ledgered():
    with pytest.raises(ControlPlaneError) as caught:
        services.killswitch_set(scope="global", engaged=True, reason=" ", actor="cli")
    assert caught.value.code == "KILL_SWITCH_REASON_REQUIRED"
    assert not LedgerEvent.objects.filter(type__startswith="controlplane.killswitch").exists()
    services.killswitch_set(scope="tenant", target="acme", engaged=True, reason="drill", actor="cli")
    assert LedgerEvent.objects.get(type="controlplane.killswitch.engaged").data["target"] == "acme"


def test_cancel_stops_further_steps(dev_policy, agent):
    intent = submit(agent)
    execution = Execution.objects.get(intent=intent)
    services.execution_cancel(execution=execution, actor=agent, reason="changed my mind")
    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert set(execution.step_runs.values_list("status", flat=True)) == {"cancelled"}
    with pytest.raises(ControlPlaneError) as caught:
        services.execution_cancel(execution=execution, actor=agent, reason="again")
    assert caught.value.code == "EXECUTION_NOT_RUNNING"
    assert Intent.objects.count() == 1


def _after_the_chain_lock(queries) -> list[list[str]]:
    """For each chain lock taken (the ledger's single-key advisory lock), the statements that followed it
    up to the end of its (possibly nested) transaction."""
    sql = [q["sql"].strip() for q in queries.captured_queries]
    segments = []
    for index, statement in enumerate(sql):
        if "pg_advisory_xact_lock(" in statement and "," not in statement:
            rest = sql[index + 1 :]
            end = next((i for i, s in enumerate(rest) if s.startswith(("RELEASE SAVEPOINT", "COMMIT"))), None)
            segments.append(rest[:end])
    return segments


def test_submit_appends_once_after_its_writes_approvals_included(agent):
    """intent_submit defers its events (and those of the approvals it opens): the chain's lock is taken
    once, after every row it writes, and only the head read and one INSERT follow it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    content = copy.deepcopy(LOW_ASSIST)
    content["deny"] = []
    _activate("test-assist", "dev", content)
    with CaptureQueriesContext(connection) as queries:
        intent = submit(agent)
    [after] = _after_the_chain_lock(queries)
    assert [s.split()[0] for s in after] == ["SELECT", "INSERT"] and "ledger_ledgerevent" in after[1]
    submitted = list(LedgerEvent.objects.filter(trace_id=intent.trace_id).order_by("seq"))
    assert [e.type for e in submitted] == [
        "controlplane.intent.received",
        "controlplane.plan.compiled",
        "controlplane.plan.verified",
        "controlplane.execution.started",
        *["controlplane.approval.request.opened"] * 3,
    ]
    assert [e.seq for e in submitted] == list(range(submitted[0].seq, submitted[0].seq + 7))
    assert ApprovalRequest.objects.filter(status="pending").count() == 3


def test_the_worker_claims_and_finishes_with_one_append_each_after_its_writes(dev_policy, agent):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    intent = submit(agent)  # the on-commit dispatch does not run inside the test's transaction
    first = StepRun.objects.get(execution__intent=intent, step__key="a")
    with CaptureQueriesContext(connection) as queries:
        services.step_run_execute(step_run_id=first.pk)
    claim, finish = _after_the_chain_lock(queries)
    for after in (claim, finish):
        assert [s.split()[0] for s in after] == ["SELECT", "INSERT"], after
    first.refresh_from_db()
    assert first.status == "completed"
    run = Execution.objects.get(intent=intent)
    assert types_for(run)[-2:] == [
        "controlplane.execution.step.started",
        "controlplane.execution.step.completed",
    ]


@pytest.mark.django_db(transaction=True)
def test_approving_a_step_while_the_worker_holds_the_execution_does_not_deadlock(agent):
    """The worker's claim and finish lock the step run and the execution, then append; an approval of
    another step of the same execution locks its request, then (through the resolver) that step run and
    the execution. Both now take the chain's lock last; before, approval_decide appended first and then
    waited for the execution while the worker waited for the chain: a deadlock."""
    import threading
    import time

    from django.db import connection, transaction

    from controlplane.ledger.services import ledger_append
    from tests.runtime.support import core_skill_installed

    core_skill_installed()  # a flushed transactional test before this one may have removed it
    content = copy.deepcopy(LOW_ASSIST)
    content["deny"] = []
    _activate("test-assist", "dev", content)
    steps = [{"key": key, "action": "noop.echo", "inputs": {}} for key in ("a", "b")]
    intent = submit(agent, draft={"goal": "two", "steps": steps})
    execution_row = Execution.objects.get(intent=intent)
    run_b = StepRun.objects.get(execution=execution_row, step__key="b")
    request = ApprovalRequest.objects.get(subject_id=str(run_b.pk))
    alice = PrincipalFactory(tenant=agent.tenant, name="alice", human=True, capabilities=["approvals.decide"])
    outcome: list = []

    def approve() -> None:
        try:
            approvals.approval_decide(
                approval=request,
                actor=alice,
                decision="approve",
                reason="ok",
                content_hash=request.content_hash,
            )
            outcome.append("approved")
        except Exception as exc:  # reported by the assertion below
            outcome.append(repr(exc))
        finally:
            connection.close()

    def approval_waits_for_a_row() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')"
            )
            return cursor.fetchone()[0] > 0

    with transaction.atomic():
        # what the worker's finish of step a does: lock its step run and the execution ...
        StepRun.objects.select_for_update().get(execution=execution_row, step__key="a")
        Execution.objects.select_for_update().get(pk=execution_row.pk)
        approving = threading.Thread(target=approve)
        approving.start()
        deadline = time.monotonic() + 10
        while not approval_waits_for_a_row() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert approval_waits_for_a_row()
        # ... and then append its events (the chain is free: the approval has not appended yet)
        ledger_append(type="controlplane.test.happened", subject=f"execution/{execution_row.id}", data={})
    approving.join(timeout=10)
    assert outcome == ["approved"]
    run_b.refresh_from_db()
    request.refresh_from_db()
    assert request.status == "approved" and run_b.status == "completed"  # it ran once approved (tasks eager)
