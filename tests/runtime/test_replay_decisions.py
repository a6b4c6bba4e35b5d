"""Replay re-takes every approval and every dispatch from the recorded inputs (issue 10, section 5).

Each forgery goes through the runtime's own code with one guard switched off (so every row agrees with
every event and only the re-taken decision can tell), or appends a crafted event with `ledger_append`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.identity.models import Principal
from controlplane.identity.services import grant_add, principal_create
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution, Intent, StepRun
from controlplane.runtime.replay import replay_verify
from controlplane.runtime.selectors import killswitch_covers
from controlplane.runtime.services import killswitch
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.runtime.support import core_skill_installed

pytestmark = pytest.mark.django_db

ASSIST_ALL = {
    "tiers": {
        tier: {"mode": "assist", "quorum": 2 if tier == "critical" else 1, "approval_timeout_seconds": 600}
        for tier in ("low", "medium", "high", "critical")
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
    core_skill_installed()


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


@pytest.fixture
def agent(tenant):
    return PrincipalFactory(tenant=tenant, name="deploy-agent", agent=True)


@pytest.fixture
def deployer(tenant):
    return PrincipalFactory(tenant=tenant, name="deployer")


@pytest.fixture
def people(tenant):
    return [
        PrincipalFactory(tenant=tenant, name=name, human=True, capabilities=["approvals.decide"])
        for name in ("alice", "bob")
    ]


@pytest.fixture
def assist_all():
    created = policy.profile_create(name="assist-all", environment="dev", content=ASSIST_ALL, actor="test")
    return policy.profile_activate(profile=created.profile, actor="test", reason="test profile")


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def one_step(message: str) -> dict:
    return {"goal": message, "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": message}}]}


def three_steps(message: str) -> dict:
    return {
        "goal": message,
        "steps": [
            {"key": "a", "action": "noop.echo", "inputs": {"message": message}},
            {"key": "b", "action": "noop.echo", "inputs": {"message": "two"}, "depends_on": ["a"]},
            {"key": "c", "action": "noop.echo", "inputs": {"message": "three"}, "depends_on": ["b"]},
        ],
    }


def submit(principal, draft: dict, key: str, capture=None) -> Intent:
    if capture is None:
        return services.intent_submit(principal=principal, draft=draft, idempotency_key=key)
    with capture(execute=True):
        return services.intent_submit(principal=principal, draft=draft, idempotency_key=key)


def request_of(intent: Intent) -> ApprovalRequest:
    return StepRun.objects.get(execution__intent=intent, step__key="a").approval


def decide(request: ApprovalRequest, actor: Principal, capture, decision: str = "approve", **kwargs):
    with capture(execute=True):
        return approvals.approval_decide(
            approval=request,
            actor=actor,
            decision=decision,
            reason="ok",
            content_hash=request.content_hash,
            **kwargs,
        )


def coded() -> set[tuple[str, str, str]]:
    """(subject, field, reason code) of every re-taken decision that failed."""
    return {
        (d.subject, d.field, d.rebuilt.split(":", 1)[0])
        for d in replay_verify().differences
        if isinstance(d.rebuilt, str) and d.field.startswith(("approval.", "dispatch."))
    }


def decided_seq(request: ApprovalRequest, approver: Principal) -> int:
    return LedgerEvent.objects.get(
        type="controlplane.approval.request.decided", subject=f"approval/{request.pk}", actor=approver.ref
    ).seq


@pytest.fixture
def unguarded(monkeypatch):
    """Approvals without the service's who-may-decide guard (human, capability, not the requester)."""
    monkeypatch.setattr(approvals, "_refuse_unless_may_decide", lambda request, actor: None)


# --- an honest history ---------------------------------------------------------------------------------


def test_an_honest_history_of_approvals_and_switches_gives_no_difference(
    assist_all, agent, deployer, people, capture
):
    alice, bob = people
    critical = submit(agent, one_step("two people"), "critical")  # the agent's step: quorum 2
    for person in (alice, bob):
        decide(request_of(critical), person, capture)
    medium = submit(deployer, one_step("one person"), "one")
    decide(request_of(medium), alice, capture)
    rejected = submit(deployer, one_step("no"), "no")
    decide(request_of(rejected), bob, capture, decision="reject")
    services.killswitch_set(scope="global", engaged=True, reason="drill", actor="cli")
    held = submit(deployer, one_step("held"), "held")
    decide(request_of(held), alice, capture)  # granted, but the switch holds the dispatch
    still_held = submit(deployer, one_step("still held"), "still")
    decide(request_of(still_held), alice, capture)
    with capture(execute=True):  # released: the person resumes what the switch held
        services.killswitch_set(scope="global", engaged=False, reason="over", actor="cli", held="resume")
    services.killswitch_set(scope="global", engaged=True, reason="drill 2", actor="cli")
    again = submit(deployer, one_step("held again"), "again")
    decide(request_of(again), alice, capture)
    services.killswitch_set(scope="global", engaged=False, reason="over", actor="cli")  # decide later
    statuses = {
        name: Execution.objects.get(intent=intent).status
        for name, intent in {
            "critical": critical,
            "one": medium,
            "no": rejected,
            "held": held,
            "still": still_held,
            "again": again,
        }.items()
    }
    assert statuses == {
        "critical": "completed",
        "one": "completed",
        "no": "failed",
        "held": "completed",
        "still": "completed",
        "again": "running",
    }
    assert replay_verify().differences == []


# --- approvals -----------------------------------------------------------------------------------------


def test_an_approval_by_a_non_human_is_found(assist_all, deployer, agent, capture, unguarded):
    intent = submit(deployer, one_step("by a bot"), "bot")
    request = decide(request_of(intent), agent, capture)
    assert request.status == "approved"
    assert Execution.objects.get(intent=intent).status == "completed"
    subject = f"approval/{request.pk}"
    assert coded() == {
        (subject, "approval.approver", "APPROVAL_APPROVER_NOT_HUMAN"),
        (subject, "approval.quorum", "APPROVAL_QUORUM_NOT_MET"),
    }
    found = {d.field: d for d in replay_verify().differences}
    assert found["approval.approver"].seq == decided_seq(request, agent)
    assert found["approval.approver"].recorded == f"{agent.ref} approve"
    assert found["approval.approver"].rebuilt == f"APPROVAL_APPROVER_NOT_HUMAN: {agent.ref} is of kind agent"
    assert found["approval.quorum"].rebuilt == (
        "APPROVAL_QUORUM_NOT_MET: 0 valid approval(s) by distinct people, quorum 1"
    )


def test_the_kind_is_the_one_the_ledger_recorded_not_the_rows(assist_all, deployer, tenant, capture):
    """A principal created as an agent, its row later edited to `human`: the guard is fooled, replay not."""
    bot = principal_create(tenant=tenant, name="bot", kind="agent", actor="test")
    Principal.objects.filter(pk=bot.pk).update(kind="human")
    bot.refresh_from_db()
    grant_add(principal=bot, capability="approvals.decide", actor="test")
    intent = submit(deployer, one_step("by a disguised bot"), "disguised")
    request = decide(request_of(intent), bot, capture)
    assert request.status == "approved"
    subject = f"approval/{request.pk}"
    assert coded() == {
        (subject, "approval.approver", "APPROVAL_APPROVER_NOT_HUMAN"),
        (subject, "approval.quorum", "APPROVAL_QUORUM_NOT_MET"),
    }


def test_an_approval_by_the_requester_is_found(assist_all, tenant, capture, unguarded):
    carol = PrincipalFactory(tenant=tenant, name="carol", human=True, capabilities=["approvals.decide"])
    intent = submit(carol, one_step("my own"), "own")
    request = decide(request_of(intent), carol, capture)
    assert request.status == "approved"
    subject = f"approval/{request.pk}"
    assert coded() == {
        (subject, "approval.approver", "APPROVAL_SELF_APPROVAL"),
        (subject, "approval.quorum", "APPROVAL_QUORUM_NOT_MET"),
    }


def test_fewer_distinct_approvers_than_the_quorum_is_found(assist_all, agent, people, capture, monkeypatch):
    monkeypatch.setattr(ApprovalRequest, "approvals_count", lambda self: self.quorum)  # the count is forged
    intent = submit(agent, one_step("one of two"), "half")
    request = decide(request_of(intent), people[0], capture)
    assert (request.status, request.quorum) == ("approved", 2)
    assert Execution.objects.get(intent=intent).status == "completed"
    assert coded() == {(f"approval/{request.pk}", "approval.quorum", "APPROVAL_QUORUM_NOT_MET")}
    [difference] = [d for d in replay_verify().differences if d.field == "approval.quorum"]
    assert difference.rebuilt == "APPROVAL_QUORUM_NOT_MET: 1 valid approval(s) by distinct people, quorum 2"


def test_a_decision_after_the_deadline_is_found(assist_all, deployer, people, capture):
    intent = submit(deployer, one_step("late"), "late")
    request = request_of(intent)
    deadline = request.expires_at
    assert deadline == request.created_at + timedelta(seconds=600)
    # The row's deadline is lifted behind the service's back, the decision taken late, the row restored:
    # every table agrees with the ledger again, but the recorded profile still says 600 seconds.
    ApprovalRequest.objects.filter(pk=request.pk).update(expires_at=None)
    request = decide(request, people[0], capture, at=deadline + timedelta(seconds=1))
    ApprovalRequest.objects.filter(pk=request.pk).update(expires_at=deadline)
    assert request.status == "approved"
    subject = f"approval/{request.pk}"
    assert coded() == {
        (subject, "approval.deadline", "APPROVAL_EXPIRED"),
        (subject, "approval.quorum", "APPROVAL_QUORUM_NOT_MET"),
    }
    assert {d.seq for d in replay_verify().differences if d.field == "approval.deadline"} == {
        decided_seq(request, people[0]),
        LedgerEvent.objects.get(type="controlplane.approval.request.approved").seq,
    }


def test_a_forged_approval_event_appended_to_the_ledger_is_found(assist_all, deployer, agent):
    """Events appended by hand (no service): an agent's approval of a step still waiting."""
    intent = submit(deployer, one_step("waiting"), "waiting")
    request = request_of(intent)
    base = {
        "request": request.pk,
        "subject_kind": request.subject_kind,
        "subject_id": request.subject_id,
        "content_hash": request.content_hash,
    }
    forged = ledger_append(
        type="controlplane.approval.request.decided",
        subject=f"approval/{request.pk}",
        data={**base, "decision": "approve", "approver": agent.ref, "reason": "lgtm"},
        tenant="acme",
        actor=agent.ref,
    )
    ledger_append(
        type="controlplane.approval.request.approved",
        subject=f"approval/{request.pk}",
        data={**base, "approvals": 1, "quorum": 1},
        tenant="acme",
        actor=agent.ref,
    )
    subject = f"approval/{request.pk}"
    assert coded() == {
        (subject, "approval.approver", "APPROVAL_APPROVER_NOT_HUMAN"),
        (subject, "approval.quorum", "APPROVAL_QUORUM_NOT_MET"),
    }
    found = {(d.subject, d.field): d for d in replay_verify().differences}
    assert found[(subject, "approval.approver")].seq == forged.seq
    assert (found[(subject, "status")].recorded, found[(subject, "status")].rebuilt) == (
        "pending",
        "approved",
    )


def test_an_approval_on_other_content_is_found(assist_all, deployer, people, capture):
    intent = submit(deployer, one_step("bound"), "bound")
    request = decide(request_of(intent), people[0], capture)
    base = {"request": request.pk, "subject_kind": request.subject_kind, "subject_id": request.subject_id}
    other = ledger_append(
        type="controlplane.approval.request.decided",
        subject=f"approval/{request.pk}",
        data={
            **base,
            "content_hash": "0" * 64,
            "decision": "approve",
            "approver": people[1].ref,
            "reason": "x",
        },
        tenant="acme",
        actor=people[1].ref,
    )
    found = {
        (d.field, d.rebuilt.split(":")[0], d.seq) for d in replay_verify().differences if d.seq == other.seq
    }
    assert ("approval.content_hash", "APPROVAL_CONTENT_CHANGED", other.seq) in found
    assert ("approval.decided", "APPROVAL_NOT_PENDING", other.seq) in found


def test_a_step_started_before_its_approval_was_granted_is_found(assist_all, deployer):
    intent = submit(deployer, one_step("jumped the queue"), "jump")
    execution = Execution.objects.get(intent=intent)
    run = StepRun.objects.get(execution=execution)
    ledger_append(
        type="controlplane.execution.step.started",
        subject=f"execution/{execution.pk}",
        data={"execution": execution.pk, "step": "a", "execution_key": run.step.execution_key, "attempt": 1},
        tenant="acme",
        actor="system",
    )
    assert coded() == {(f"execution/{execution.pk}/step/a", "dispatch.approval", "APPROVAL_NOT_GRANTED")}


# --- kill switches -------------------------------------------------------------------------------------


@pytest.fixture
def switch_ignored(monkeypatch):
    """Dispatch and the worker's claim both without their kill-switch check (the gate lets everything go)."""
    monkeypatch.setattr(killswitch, "killswitch_engaged_for", lambda **kwargs: None)


@pytest.mark.parametrize(
    ("scope", "target", "covers"),
    [
        ("global", "", True),
        ("tenant", "acme", True),
        ("action", "noop.echo", True),
        ("tenant", "globex", False),
        ("action", "http.webhook", False),
    ],
)
def test_a_dispatch_under_an_engaged_switch_is_found(
    scope, target, covers, deployer, capture, switch_ignored
):
    policy.profile_bootstrap(environment="dev")  # everything allowed: no approvals
    services.killswitch_set(scope=scope, target=target, engaged=True, reason="incident", actor="cli")
    intent = submit(deployer, three_steps("under the switch"), "under", capture)
    execution = Execution.objects.get(intent=intent)
    assert execution.status == "completed"
    expected = {
        (f"execution/{execution.pk}/step/{k}", "dispatch.killswitch", "KILL_SWITCH_ENGAGED") for k in "abc"
    }
    assert coded() == (expected if covers else set())
    if covers:
        started = LedgerEvent.objects.filter(type="controlplane.execution.step.started").order_by("seq")
        found = sorted((d for d in replay_verify().differences), key=lambda d: d.seq)
        assert [d.seq for d in found] == [e.seq for e in started]
        assert found[0].rebuilt.startswith(f"KILL_SWITCH_ENGAGED: {scope}/{target or '*'} engaged by cli at ")


def test_a_switch_released_before_the_dispatch_is_no_difference(deployer, capture, switch_ignored):
    policy.profile_bootstrap(environment="dev")
    services.killswitch_set(scope="global", engaged=True, reason="drill", actor="cli")
    services.killswitch_set(scope="global", engaged=False, reason="over", actor="cli")
    submit(deployer, one_step("after the drill"), "after", capture)
    assert replay_verify().differences == []


def test_the_runtime_and_replay_judge_scope_with_the_same_function():
    assert killswitch_covers(scope="global", target="", tenant="acme", action="noop.echo")
    assert killswitch_covers(scope="tenant", target="acme", tenant="acme", action="noop.echo")
    assert killswitch_covers(scope="action", target="noop.echo", tenant="acme", action="noop.echo")
    assert not killswitch_covers(scope="tenant", target="noop.echo", tenant="acme", action="noop.echo")
    assert not killswitch_covers(scope="action", target="acme", tenant="acme", action="noop.echo")
