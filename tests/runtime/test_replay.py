"""`manage.py replay`: rebuild the action flow from the ledger, compare, re-run compilation and policy."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution, Intent, KillSwitch, Plan, PlanStep, StepRun
from controlplane.runtime.replay import replay_verify, simulate_profile
from controlplane.runtime.services import intents
from skills.models import ActionContract
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.runtime.support import core_skill_installed

pytestmark = pytest.mark.django_db

ASSIST_ALL = {
    "tiers": {
        "low": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600},
        "medium": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600},
        "high": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600},
        "critical": {"mode": "assist", "quorum": 2, "approval_timeout_seconds": 600},
    },
    "rules": [
        {
            "id": "agent-raise",
            "when": {"principal_kind": "agent"},
            "raise_to": "critical",
            "reason": "POLICY_TIER_RAISED_AGENT_PRINCIPAL",
        }
    ],
    "deny": [],
}


@pytest.fixture(autouse=True)
def _core_skill(db):
    core_skill_installed()  # a transactional test before this one may have flushed migration data


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


@pytest.fixture
def deployer(agent):
    """A service principal (policy does not raise its steps as it does an agent's)."""
    return PrincipalFactory(tenant=agent.tenant, name="deployer")


@pytest.fixture
def people(agent):
    return [
        PrincipalFactory(tenant=agent.tenant, name=name, human=True, capabilities=["approvals.decide"])
        for name in ("alice", "bob")
    ]


def three_steps(message: str = "one") -> dict:
    return {
        "goal": "echo three times",
        "context": {"ticket": "OPS-7", "priority": 2},
        "steps": [
            {"key": "a", "action": "noop.echo", "inputs": {"message": message}},
            {"key": "b", "action": "noop.echo", "inputs": {"message": "two"}, "depends_on": ["a"]},
            {"key": "c", "action": "noop.echo", "inputs": {"message": "three"}, "depends_on": ["a", "b"]},
        ],
    }


def one_step(message: str) -> dict:
    return {"goal": message, "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": message}}]}


def run(*args: str) -> str:
    out = StringIO()
    call_command("replay", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> tuple[CommandError, str]:
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("replay", *args, stdout=out)
    return caught.value, out.getvalue()


def activate(name: str, content: dict, environment: str = "dev"):
    created = policy.profile_create(name=name, environment=environment, content=content, actor="test")
    return policy.profile_activate(profile=created.profile, actor="test", reason="test profile")


def submit(principal, draft, key, capture=None):
    if capture is None:
        return services.intent_submit(principal=principal, draft=draft, idempotency_key=key)
    with capture(execute=True):
        return services.intent_submit(principal=principal, draft=draft, idempotency_key=key)


def execution_of(intent: Intent) -> Execution:
    return Execution.objects.get(intent=intent)


def pending_request(intent: Intent, step: str = "a") -> ApprovalRequest:
    run_ = StepRun.objects.get(execution__intent=intent, step__key=step)
    return ApprovalRequest.objects.get(pk=run_.approval_id)


@pytest.fixture
def busy_ledger(dev_policy, agent, deployer, people, django_capture_on_commit_callbacks):
    """Every path of the flow, recorded through the services: completed, refused, approved, rejected,
    expired, cancelled, blocked by the kill switch, and left waiting."""
    capture = django_capture_on_commit_callbacks
    alice, bob = people
    flows = {"completed": submit(agent, three_steps(), "completed", capture)}
    bad = three_steps()
    bad["steps"][0]["depends_on"] = ["c"]
    flows["cycle"] = submit(agent, bad, "cycle")
    flows["unknown"] = submit(agent, {"goal": "x", "steps": [{"key": "a", "action": "nope.nope"}]}, "unknown")
    flows["invalid"] = submit(
        agent, {"goal": "x", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": 5}}]}, "bad"
    )
    services.killswitch_set(scope="action", target="noop.echo", engaged=True, reason="drill", actor="cli")
    flows["killed"] = submit(agent, three_steps("killed"), "killed", capture)
    services.killswitch_set(scope="action", target="noop.echo", engaged=False, reason="over", actor="cli")

    activate("assist-all", ASSIST_ALL)  # a later profile: the executions above keep theirs
    flows["approved"] = submit(agent, one_step("approved"), "approved")
    request = pending_request(flows["approved"])
    with capture(execute=True):
        for person in (alice, bob):  # the agent's step is raised to critical: two people
            approvals.approval_decide(
                approval=request,
                actor=person,
                decision="approve",
                reason="ok",
                content_hash=request.content_hash,
            )
    flows["rejected"] = submit(deployer, three_steps("rejected"), "rejected")
    request = pending_request(flows["rejected"])
    approvals.approval_decide(
        approval=request, actor=alice, decision="reject", reason="no", content_hash=request.content_hash
    )
    flows["expired"] = submit(deployer, one_step("expired"), "expired")
    request = pending_request(flows["expired"])
    approvals.approvals_sweep(now=request.created_at + timedelta(seconds=601))
    flows["cancelled"] = submit(deployer, three_steps("cancelled"), "cancelled")
    services.execution_cancel(execution=execution_of(flows["cancelled"]), actor=deployer, reason="changed")
    flows["waiting"] = submit(deployer, one_step("waiting"), "waiting")
    return flows


def test_a_clean_ledger_replays_with_no_difference_and_exit_0(busy_ledger):
    statuses = {name: execution_of(i).status for name, i in busy_ledger.items() if i.status == "compiled"}
    assert statuses == {
        "completed": "completed",
        "killed": "running",  # held by the kill switch, released without a choice: it waits for a person
        "approved": "completed",
        "rejected": "failed",
        "expired": "failed",
        "cancelled": "cancelled",
        "waiting": "running",
    }
    assert [busy_ledger[n].rejection["code"] for n in ("cycle", "unknown", "invalid")] == [
        "PLAN_CYCLE",
        "PLAN_UNKNOWN_ACTION",
        "PLAN_INPUT_INVALID",
    ]
    report = replay_verify()
    assert report.differences == []
    # 10 intents, 7 executions, 9 approval requests (1 + 3 + 1 + 3 + 1), 1 kill switch
    assert report.checked == 10 + 7 + 9 + 1
    assert run("--verify", "--all") == "runtime replay: 27 checked, 0 difference(s)\n"
    assert run("--verify") == run("--verify", "--all") == run("--all")


def test_a_projection_row_altered_behind_the_services_back_is_found(busy_ledger):
    completed = execution_of(busy_ledger["completed"])
    StepRun.objects.filter(execution=completed, step__key="b").update(status="failed")
    Execution.objects.filter(pk=completed.pk).update(reason_codes=["MADE_UP"])
    error, out = refused("--verify", "--all")
    assert error.returncode == 1
    assert str(error).startswith("REPLAY_DIFFERENCE: 2 difference(s)")
    verified = LedgerEvent.objects.get(type="controlplane.plan.verified", subject=f"execution/{completed.pk}")
    assert out.splitlines() == [
        f"DIFF execution/{completed.pk} reason_codes: recorded ['MADE_UP'], rebuilt [] (seq {verified.seq})",
        f"DIFF execution/{completed.pk}/step/b status: recorded 'failed', rebuilt 'completed' "
        f"(seq {verified.seq})",
        "runtime replay: 27 checked, 2 difference(s)",
    ]


def test_altered_plans_approvals_intents_and_switches_are_found(busy_ledger):
    approved = execution_of(busy_ledger["approved"])
    request = pending_request(busy_ledger["approved"])
    ApprovalRequest.objects.filter(pk=request.pk).update(status="rejected")
    PlanStep.objects.filter(plan=approved.plan, key="a").update(inputs={"message": "something else"})
    Intent.objects.filter(pk=busy_ledger["cycle"].pk).update(rejection={"code": "PLAN_INVALID"})
    KillSwitch.objects.update(engaged=True)
    found = [(d.subject, d.field, d.recorded, d.rebuilt) for d in replay_verify().differences]
    cycle = busy_ledger["cycle"]
    assert sorted(found, key=str) == sorted(
        [
            (f"approval/{request.pk}", "status", "rejected", "approved"),
            (
                f"plan/{approved.plan_id}/step/a",
                "inputs",
                {"message": "something else"},
                {"message": "approved"},
            ),
            (f"intent/{cycle.pk}", "rejection", {"code": "PLAN_INVALID"}, cycle.rejection),
            ("killswitch/action/noop.echo", "engaged", True, False),
        ],
        key=str,
    )


def test_rows_without_events_and_events_without_rows_are_found(busy_ledger):
    waiting = execution_of(busy_ledger["waiting"])
    run_ = StepRun.objects.get(execution=waiting)
    StepRun.objects.filter(pk=run_.pk).update(approval=None)
    ApprovalRequest.objects.filter(pk=run_.approval_id).update(subject_id="0")
    StepRun.objects.filter(pk=run_.pk).delete()
    found = [(d.subject, d.field, d.recorded, d.rebuilt) for d in replay_verify().differences]
    assert sorted(found, key=str) == sorted(
        [
            (f"execution/{waiting.pk}/step/a", "exists", False, True),
            (f"approval/{run_.approval_id}", "subject_id", "0", str(run_.pk)),
            (f"approval/{run_.approval_id}", "subject_id", "0", None),
        ],
        key=str,
    )


def test_activating_another_profile_later_does_not_make_old_executions_differ(busy_ledger):
    before = {e.pk: (e.profile_name, e.profile_version) for e in Execution.objects.all()}
    activate("assist-all-2", {**ASSIST_ALL, "rules": []})
    policy.profile_bootstrap(environment="dev")  # a no-op now: one is active
    assert replay_verify().differences == []
    assert {e.pk: (e.profile_name, e.profile_version) for e in Execution.objects.all()} == before
    assert before[execution_of(busy_ledger["completed"]).pk] == ("control-plane-dev-v1", 1)


def test_a_recorded_verdict_the_rules_do_not_give_is_found(dev_policy, agent, monkeypatch):
    """The verdict on the ledger says allow, but the recorded profile demands approval."""
    activate("assist-all", ASSIST_ALL)
    honest = intents.step_decide

    def forged(**kwargs):
        decision = honest(**kwargs)
        return dataclasses.replace(decision, verdict="allow", effective_verdict="allow", quorum=0)

    monkeypatch.setattr(intents, "step_decide", forged)
    intent = submit(agent, one_step("forged"), "forged")
    execution = execution_of(intent)
    assert StepRun.objects.get(execution=execution).verdict == "allow"
    subject = f"execution/{execution.pk}/step/a"
    found = {(d.subject, d.field): (d.recorded, d.rebuilt) for d in replay_verify().differences}
    assert found[(subject, "policy.verdict")] == ("allow", "require_approval")
    assert found[(subject, "policy.effective_verdict")] == ("allow", "require_approval")
    assert found[(subject, "policy.quorum")] == (0, 2)
    assert {field for s, field in found if s == subject} == {
        "policy.verdict",
        "policy.effective_verdict",
        "policy.quorum",
        "policy.decision_hash",
    }


def test_a_tampered_projection_verdict_is_found(busy_ledger):
    waiting = execution_of(busy_ledger["waiting"])
    StepRun.objects.filter(execution=waiting).update(verdict="allow", decision={"verdict": "allow"})
    found = {(d.subject, d.field, d.recorded) for d in replay_verify().differences}
    subject = f"execution/{waiting.pk}/step/a"
    assert {(s, f) for s, f, _ in found} == {(subject, "verdict"), (subject, "decision")}
    assert (subject, "verdict", "allow") in found


def test_compilation_is_rerun_against_the_recorded_contract_versions(busy_ledger):
    echo = ActionContract.objects.get(name="noop.echo", version="1.0.0")
    # A newer version installed later does not change what the recorded drafts compile to...
    ActionContract.objects.create(
        skill=echo.skill,
        name="noop.echo",
        version="2.0.0",
        input_schema={"type": "object"},
        output_schema={"type": "object"},
        risk_tier="high",
        executor="noop.echo",
    )
    ActionContract.objects.create(
        skill=echo.skill,
        name="nope.nope",
        version="1.0.0",
        input_schema={"type": "object"},
        output_schema={"type": "object"},
        risk_tier="low",
        executor="noop.echo",
    )
    assert replay_verify().differences == []
    # ...but a recorded contract whose content changed does: the plan would no longer be the same.
    ActionContract.objects.filter(pk=echo.pk).update(
        input_schema={**echo.input_schema, "required": ["message"]}
    )
    found = {(d.subject, d.field) for d in replay_verify().differences}
    compiled = {i.pk for i in busy_ledger.values() if i.status == "compiled"}
    assert found == {(f"intent/{pk}", name) for pk in compiled for name in ("compile.plan", "compile.steps")}


def test_execution_scope_reports_only_that_execution(busy_ledger):
    completed, waiting = execution_of(busy_ledger["completed"]), execution_of(busy_ledger["waiting"])
    StepRun.objects.filter(execution=waiting).update(attempts=3)
    assert run("--verify", "--execution", completed.pk) == "runtime replay: 2 checked, 0 difference(s)\n"
    error, out = refused("--verify", "--execution", waiting.pk)
    assert error.returncode == 1
    assert out.splitlines()[0].startswith(
        f"DIFF execution/{waiting.pk}/step/a attempts: recorded 3, rebuilt 0"
    )
    assert out.splitlines()[-1] == "runtime replay: 3 checked, 1 difference(s)"  # intent, execution, approval


def test_json_output_lists_each_difference(busy_ledger):
    completed = execution_of(busy_ledger["completed"])
    StepRun.objects.filter(execution=completed, step__key="c").update(outcome={"echo": "forged"})
    _, out = refused("--verify", "--json")
    body = json.loads(out)
    assert body["ok"] is False and body["domain"] == "runtime"
    (difference,) = body["differences"]
    assert difference["subject"] == f"execution/{completed.pk}/step/c"
    assert difference["field"] == "outcome" and difference["recorded"] == {"echo": "forged"}
    assert difference["rebuilt"]["echo"] == {"message": "three"}


def test_refusals_name_their_reason_code():
    assert str(refused("--verify", "--execution", "nope")[0]) == (
        "NOT_FOUND: no execution nope in the ledger or the tables"
    )
    for args in (
        (),
        ("--verify", "--all", "--execution", "x"),
        ("--against-profile", "p", "--verify"),
        ("--incidents", "--all"),
        ("--verify", "--version", "2"),
    ):
        assert str(refused(*args)[0]).startswith("VALIDATION_FAILED: "), args
    assert str(refused("--against-profile", "nope")[0]) == "POLICY_PROFILE_NOT_FOUND: no policy profile nope"


# --- policy simulation -----------------------------------------------------------------------------------


def test_against_profile_reports_the_verdicts_that_would_change(busy_ledger):
    plan_steps = {
        name: len(execution_of(i).plan.steps.all())
        for name, i in busy_ledger.items()
        if i.status == "compiled"
    }
    simulation = simulate_profile(name="assist-all")
    assert simulation.executions == 7 and simulation.steps == sum(plan_steps.values()) == 15
    # Under assist-all every step needs approval: the two dev-profile executions' six steps change
    # (allow -> critical for the agent); the five recorded under assist-all itself do not.
    assert dict(simulation.transitions) == {"allow -> require_approval(2)": 6}
    assert {(c.execution, c.step) for c in simulation.changes} == {
        (execution_of(busy_ledger[name]).pk, key) for name in ("completed", "killed") for key in "abc"
    }
    codes = simulation.by_reason_code()
    assert codes["POLICY_ALLOW_TIER_AUTONOMOUS"] == {"recorded": 6, "simulated": 0, "in_changed_verdicts": 0}
    assert codes["POLICY_TIER_RAISED_AGENT_PRINCIPAL"] == {
        "recorded": 1,
        "simulated": 7,
        "in_changed_verdicts": 6,
    }
    assert codes["POLICY_REQUIRES_APPROVAL"] == {"recorded": 9, "simulated": 15, "in_changed_verdicts": 6}
    # The dev profile over the same steps: the assist-all executions would have run alone.
    back = simulate_profile(name="control-plane-dev-v1", version=1)
    assert dict(back.transitions) == {
        "require_approval(2) -> allow": 1,
        "require_approval(1) -> allow": 8,
    }
    assert LedgerEvent.objects.filter(type__startswith="controlplane.policy.simulat").count() == 0


def test_against_profile_command_text_and_json(busy_ledger):
    out = run("--against-profile", "assist-all")
    lines = out.splitlines()
    assert lines[0].startswith("simulating assist-all@v1 (dev, ")
    assert lines[0].endswith("over 7 execution(s), 15 step(s): 6 verdict(s) would change")
    completed = execution_of(busy_ledger["completed"])
    assert (
        f"CHANGE execution/{completed.pk}/step/a noop.echo: allow -> require_approval(2) "
        "(POLICY_TIER_RAISED_AGENT_PRINCIPAL, POLICY_REQUIRES_APPROVAL)"
    ) in lines
    assert "TRANSITION allow -> require_approval(2)\t6" in lines
    assert "POLICY_REQUIRES_APPROVAL\t9\t15\t6" in lines
    body = json.loads(run("--against-profile", "assist-all", "--execution", completed.pk, "--json"))
    assert (body["executions"], body["steps"], body["changed"]) == (1, 3, 3)
    assert body["profile"]["name"] == "assist-all" and body["profile"]["version"] == 1
    assert body["changes"][0]["recorded"]["verdict"] == "allow"
    assert body["changes"][0]["simulated"]["quorum"] == 2
    assert body["by_reason_code"]["POLICY_TIER_RAISED_AGENT_PRINCIPAL"]["in_changed_verdicts"] == 3
    assert Plan.objects.count() >= 1  # the simulation wrote nothing: replay still agrees
    assert replay_verify().differences == []


def test_against_profile_of_another_environment_enforces_its_denies(busy_ledger):
    strict = copy.deepcopy(ASSIST_ALL)
    strict["deny"] = [
        {"id": "no-echo", "when": {"action": "noop.echo"}, "reason": "POLICY_DENY_DANGEROUS_ACTION"}
    ]
    policy.profile_create(name="prod-no-echo", environment="prod", content=strict, actor="test")
    simulation = simulate_profile(name="prod-no-echo")
    assert simulation.by_reason_code()["POLICY_DENY_DANGEROUS_ACTION"]["simulated"] == 15
    assert all(c.simulated["verdict"] == "deny" and c.simulated["enforced"] for c in simulation.changes)
    assert len(simulation.changes) == 15


def test_incident_replay_runs_the_incidents_apps_replay():
    assert run("--incidents") == "incidents replay: 0 checked, 0 difference(s)\n"
    error, out = refused("--incident", "f" * 64)
    assert error.returncode == 1 and str(error).startswith("REPLAY_DIFFERENCE: 1 difference(s)")
    assert out.splitlines()[0].startswith(f"DIFF incident/{'f' * 64} ledger: ")


def test_events_the_fold_cannot_follow_are_reported_not_fatal(busy_ledger):
    from controlplane.ledger.services import ledger_append

    completed = execution_of(busy_ledger["completed"])
    odd = ledger_append(
        type="controlplane.execution.step.teleported",
        subject=f"execution/{completed.pk}",
        data={"execution": completed.pk, "step": "a"},
        actor="test",
    )
    broken = ledger_append(
        type="controlplane.plan.compiled", subject="plan/x", data={"plan": "x"}, actor="test"
    )
    found = {(d.subject, d.field, d.recorded, d.rebuilt, d.seq) for d in replay_verify().differences}
    assert found == {
        (
            f"execution/{completed.pk}",
            "event",
            "controlplane.execution.step.teleported",
            "an event type replay does not know",
            odd.seq,
        ),
        ("plan/x", "event", "controlplane.plan.compiled", "cannot be folded: KeyError('steps')", broken.seq),
    }
    # Scoped to another execution, the first is not reported; the plan one names no execution either.
    assert replay_verify(execution_id=execution_of(busy_ledger["waiting"]).pk).differences == []


# --- the worker side: retries, lost workers, failures, runners -----------------------------------------


@pytest.fixture
def worker_ledger(dev_policy, deployer, tmp_path, settings, django_capture_on_commit_callbacks):
    """Retries with backoff, a worker lost mid-step (and one lost on its last attempt), a step that fails
    for good, and a runner registered then disabled: each through the runtime's own code."""
    from django.utils import timezone

    from controlplane.runtime.runners import runner_disable
    from controlplane.runtime.services import steps
    from tests.runtime.support import local_runner

    capture = django_capture_on_commit_callbacks
    settings.CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS = 0.1

    def webhook(operation, payload):
        inputs = {"runner": "ops", "operation": operation, "payload": payload}
        return {"goal": operation, "steps": [{"key": "a", "action": "http.webhook", "inputs": inputs}]}

    def sweep(now):
        with capture(execute=True):
            return services.step_runs_sweep(now=now)

    flows = {}
    with local_runner(tmp_path) as served:
        settings.CONTROLPLANE_RUNNER_SECRET = served.secret
        flows["flaky"] = submit(deployer, webhook("flaky", {"failures": 1}), "flaky", capture)
        sweep(timezone.now() + timedelta(seconds=120))  # the retry is due
        flows["fails"] = submit(deployer, webhook("fail", {"retryable": False}), "fails", capture)
        runner_disable(name="ops", actor="cli", reason="decommissioned")
    # A worker claims a step and dies (never finishes); the sweeper sends it again once the lease is past.
    flows["lost"] = submit(deployer, three_steps("lost"), "lost")
    run_ = StepRun.objects.get(execution__intent=flows["lost"], step__key="a")
    assert steps._claim(run_.pk) is not None  # as tests/runtime/test_sweeper.py's start_and_die
    run_.refresh_from_db()
    assert sweep(run_.lease_expires_at + timedelta(seconds=1))["requeued"] == 1
    settings.CONTROLPLANE_STEP_MAX_ATTEMPTS = 1
    flows["gone"] = submit(deployer, one_step("gone"), "gone")
    run_ = StepRun.objects.get(execution__intent=flows["gone"])
    assert steps._claim(run_.pk) is not None
    run_.refresh_from_db()
    assert sweep(run_.lease_expires_at + timedelta(seconds=1))["failed"] == 1
    return flows


def test_retries_lost_workers_failures_and_runners_replay_cleanly(worker_ledger):
    statuses = {name: execution_of(intent).status for name, intent in worker_ledger.items()}
    assert statuses == {"flaky": "completed", "fails": "failed", "lost": "completed", "gone": "failed"}
    types = set(LedgerEvent.objects.values_list("type", flat=True))
    assert {
        "controlplane.execution.step.retry_scheduled",
        "controlplane.execution.step.requeued",
        "controlplane.runner.registered",
        "controlplane.runner.disabled",
    } <= types
    flaky = StepRun.objects.get(execution__intent=worker_ledger["flaky"])
    assert [(e["attempt"], e["result"]) for e in flaky.attempt_log] == [(1, "retry"), (2, "completed")]
    assert replay_verify().differences == []


def test_an_altered_attempt_log_or_runner_is_found(worker_ledger):
    from controlplane.runtime.models import Runner

    flaky = StepRun.objects.get(execution__intent=worker_ledger["flaky"])
    forged = [{**flaky.attempt_log[1], "attempt": 1}]
    StepRun.objects.filter(pk=flaky.pk).update(attempt_log=forged)
    Runner.objects.filter(name="ops").update(url="http://127.0.0.1:1/steps")
    found = {(d.subject, d.field) for d in replay_verify().differences}
    assert found == {
        (f"execution/{flaky.execution_id}/step/a", "attempt_log"),
        ("runner/ops", "url"),
    }
