"""Through the runtime: a step of a disabled skill is refused SKILL_NOT_ACTIVE at compilation, the refusal
is recorded on plan.rejected within its contract, and replay re-takes it with no difference; a step naming
more targets than its blast radius is refused at compilation; waiting steps of a disabled skill are held
(and resume on enable), those of a skill quarantined for a revoked key are blocked with SKILL_KEY_REVOKED;
dispatch re-checks the installed manifest hash against the ledgered one."""

from __future__ import annotations

import pytest

from controlplane.kernel.contracts import REGISTRY
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution
from controlplane.runtime.replay import replay_verify
from skills import services as skills
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db

DRAFT = {"goal": "g", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "hi"}}]}


def test_a_disabled_skill_refuses_compilation_and_replay_agrees():
    policy.profile_bootstrap(environment="dev")
    agent = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="bot", agent=True)
    skills.skill_disable(name="core", actor="test", reason="drill")
    intent = services.intent_submit(principal=agent, draft=DRAFT, idempotency_key="k")
    assert intent.status == "rejected" and intent.rejection["code"] == "SKILL_NOT_ACTIVE"
    assert not Execution.objects.exists()
    event = LedgerEvent.objects.get(type="controlplane.plan.rejected")
    assert event.reason_codes == ["SKILL_NOT_ACTIVE"]
    assert event.data["contracts"] == [
        {"action": "noop.echo", "version": None, "resolved": None, "refused": "SKILL_NOT_ACTIVE"}
    ]
    assert REGISTRY.get("plan.rejected").errors(event.data) == []
    assert replay_verify().differences == []


ASSIST = {
    "tiers": {
        tier: {"mode": "assist", "quorum": 2 if tier == "critical" else 1, "approval_timeout_seconds": 600}
        for tier in ("low", "medium", "high", "critical")
    },
    "rules": [],
    "deny": [],
}


@pytest.fixture
def eager():
    from controlplane.celery import app as celery_app

    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _waiting_step(draft, key="wait"):
    """A step waiting for its approval (every tier needs one), and the person who will approve it."""
    from approvals.models import ApprovalRequest
    from controlplane.runtime.models import StepRun

    tenant = TenantFactory(slug="acme")
    agent = PrincipalFactory(tenant=tenant, name="bot", agent=True)
    alice = PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"])
    created = policy.profile_create(name="assist", environment="dev", content=ASSIST, actor="test")
    policy.profile_activate(profile=created.profile, actor="test", reason="approvals for everything")
    intent = services.intent_submit(principal=agent, draft=draft, idempotency_key=key)
    run = StepRun.objects.get(execution__intent=intent, step__key="a")
    return run, ApprovalRequest.objects.get(pk=run.approval_id), alice


def _approve(request, alice, capture):
    from approvals import services as approvals

    with capture(execute=True):
        approvals.approval_decide(
            approval=request, actor=alice, decision="approve", reason="ok", content_hash=request.content_hash
        )


def test_a_waiting_step_of_a_skill_disabled_meanwhile_is_held_and_resumes_on_enable(
    django_capture_on_commit_callbacks, eager
):
    run, request, alice = _waiting_step(DRAFT)
    skills.skill_disable(name="core", actor="test", reason="incident")
    _approve(request, alice, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert (run.status, run.held_gate, run.held_code) == ("held", "skill-disabled", "SKILL_DISABLED")
    assert not LedgerEvent.objects.filter(type="controlplane.execution.step.completed").exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.held_steps_recheck() == {"resumed": 0, "held_failed": 0}  # still disabled
    skills.skill_enable(name="core", actor="test", reason="incident over")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.held_steps_recheck() == {"resumed": 1, "held_failed": 0}
    run.refresh_from_db()
    assert run.status == "completed"
    assert replay_verify().differences == []


def _install_acme(action=None):
    from tests.skills.support import ACTION, SigningPublisher, manifest

    publisher = SigningPublisher()
    publisher.trust()
    skills.skill_install(
        envelope=publisher.sign(manifest(actions=[action or ACTION])), actor="test", reason="ops"
    )
    return publisher


ACME_DRAFT = {"goal": "g", "steps": [{"key": "a", "action": "acme.restart", "inputs": {"service": "web"}}]}


def test_revoking_the_key_blocks_a_waiting_step_with_skill_key_revoked(
    django_capture_on_commit_callbacks, eager
):
    publisher = _install_acme()
    run, request, alice = _waiting_step(ACME_DRAFT)
    assert skills.publisher_key_revoke(key_id=publisher.key_ids[0], actor="test", reason="leaked") == [
        "acme-ops@1.0.0"
    ]
    _approve(request, alice, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert (run.status, run.held_code) == ("held", "SKILL_KEY_REVOKED")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.held_steps_recheck()["held_failed"] == 1
    run.refresh_from_db()
    assert run.status == "blocked" and run.reason_codes[-1] == "SKILL_KEY_REVOKED"
    assert run.execution.__class__.objects.get(pk=run.execution_id).status == "failed"
    assert not LedgerEvent.objects.filter(type="controlplane.execution.step.completed").exists()
    blocked = LedgerEvent.objects.get(type="controlplane.execution.step.blocked")
    assert blocked.reason_codes == ["SKILL_KEY_REVOKED"]


def test_dispatch_rechecks_the_manifest_hash_against_the_ledger(django_capture_on_commit_callbacks, eager):
    from skills.models import Skill

    _install_acme()
    run, request, alice = _waiting_step(ACME_DRAFT)
    skill = Skill.objects.get(name="acme-ops")
    # A row edited around the services (the database, not the admin): the manifest and its hash together.
    skill.manifest = {**skill.manifest, "description": "changed behind our back"}
    from skills.verification import manifest_hash

    Skill.objects.filter(pk=skill.pk).update(
        manifest=skill.manifest, manifest_hash=manifest_hash(skill.manifest)
    )
    _approve(request, alice, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert (run.status, run.held_code) == ("held", "SKILL_MANIFEST_CHANGED")
    assert not LedgerEvent.objects.filter(type="controlplane.execution.step.completed").exists()


WIDE = {
    "name": "acme.restart",
    "version": "1.0.0",
    "risk_tier": "medium",
    "executor": "noop.echo",
    "input_schema": {
        "type": "object",
        "required": ["services"],
        "properties": {"services": {"type": "array", "items": {"type": "string"}}},
    },
    "output_schema": {"type": "object"},
    "capabilities": [],
    "side_effects": ["infrastructure"],
    "blast_radius": {"target_input": "services", "max_targets": 2},
}


def test_a_step_naming_more_targets_than_its_blast_radius_is_refused_at_compilation():
    policy.profile_bootstrap(environment="dev")
    agent = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="bot", agent=True)
    _install_acme(WIDE)
    draft = {
        "goal": "g",
        "steps": [{"key": "a", "action": "acme.restart", "inputs": {"services": ["a", "b"]}}],
    }
    assert services.intent_submit(principal=agent, draft=draft, idempotency_key="two").status != "rejected"
    draft["steps"][0]["inputs"]["services"].append("c")
    intent = services.intent_submit(principal=agent, draft=draft, idempotency_key="three")
    assert intent.status == "rejected" and intent.rejection["code"] == "PLAN_BLAST_RADIUS_EXCEEDED"
    assert intent.rejection["path"] == "inputs.services" and "at most 2" in intent.rejection["detail"]
    assert Execution.objects.count() == 1
    assert replay_verify().differences == []


def _restarts(call):
    """A test executor that uses the capability the acme manifest declares, and one it does not."""
    call.require("acme.services.restart")
    if call.inputs.get("service") == "everything":
        call.require("acme.services.delete")
    return {"restarted": call.inputs["service"]}


def test_an_action_may_use_only_the_capabilities_its_manifest_declared(
    django_capture_on_commit_callbacks, eager, monkeypatch
):
    from controlplane.runtime import executors
    from controlplane.runtime.models import StepRun
    from tests.skills.support import ACTION

    monkeypatch.setitem(executors._EXECUTORS, "acme.restarts", _restarts)
    _install_acme({**ACTION, "executor": {"kind": "builtin", "name": "acme.restarts"}})
    policy.profile_bootstrap(environment="dev")
    agent = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="bot", agent=True)

    def submit(service, key):
        draft = {
            "goal": "g",
            "steps": [{"key": "a", "action": "acme.restart", "inputs": {"service": service}}],
        }
        with django_capture_on_commit_callbacks(execute=True):
            intent = services.intent_submit(principal=agent, draft=draft, idempotency_key=key)
        return StepRun.objects.get(execution__intent=intent)

    assert submit("web", "declared").status == "completed"
    undeclared = submit("everything", "undeclared")
    assert undeclared.status == "failed" and undeclared.reason_codes == ["SKILL_CAPABILITY_UNDECLARED"]
    assert LedgerEvent.objects.filter(type="controlplane.execution.step.completed").count() == 1
