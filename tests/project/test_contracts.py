"""The contract registry: its document is current, its surfaces exist, and every event the action flow
really writes validates against its contract."""

from __future__ import annotations

import importlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import resolve
from django.utils import timezone
from django.utils.module_loading import import_string
from jsonschema import Draft202012Validator

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.kernel.contracts import COMMAND, EVENT, QUERY, REGISTRY
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import gates, services
from controlplane.runtime.models import Execution, StepRun
from controlplane.runtime.runners import runner_disable, runner_grant_revoke
from controlplane.runtime.services import steps
from controlplane.runtime.services.rollback import step_rollback
from tests.channels.every_event import write_every_channel_event
from tests.governance.support import write_every_governance_event
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.incidents.factories import write_every_assignment_event
from tests.learning.support import write_every_learning_event
from tests.plugins.support import write_every_plugin_event
from tests.runtime.support import core_skill_installed, local_runner
from tests.skills.support import write_every_skill_event

pytestmark = pytest.mark.django_db

# The contracts the issue names, by kind (the registry may hold more).
ISSUE_NAMES = {
    COMMAND: {
        "intent.submit",
        "plan.compile",
        "plan.verify",
        "execution.start",
        "execution.approve",
        "execution.reject",
        "execution.cancel",
    },
    QUERY: {"execution.get", "execution.list", "trace.get", "policy.explain"},
    EVENT: {
        "intent.received",
        "plan.compiled",
        "plan.rejected",
        "execution.step.started",
        "execution.step.blocked",
        "execution.step.completed",
        "execution.completed",
        "execution.failed",
    },
}

ASSIST = {
    "tiers": {
        "low": {
            "mode": "assist",
            "quorum": 1,
            "approval_timeout_seconds": 600,
            "escalation": [{"after_seconds": 60, "level": 1}],
        },
        "medium": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600},
        "high": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600},
        "critical": {"mode": "assist", "quorum": 2, "approval_timeout_seconds": 600},
    },
    "rules": [],
    "deny": [],
}


@pytest.fixture(autouse=True)
def _core_skill(db):
    core_skill_installed()  # a transactional test before this one may have flushed migration data


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_contract_docs_are_current():
    assert run("contracts", "docs", "--check") == "docs/contracts.md is up to date\n"


def test_contracts_list_names_every_contract_once():
    lines = run("contracts", "list").splitlines()
    names = [line.split("\t")[0] for line in lines]
    assert names == [c.qualified_name for c in REGISTRY] and len(set(names)) == len(names)
    assert "controlPlane.intent.received\tevent\tcontrolplane.runtime\tcontrolplane.intent.received" in lines


def test_the_registry_holds_what_the_issue_names_with_valid_schemas():
    for kind, names in ISSUE_NAMES.items():
        assert names <= {c.name for c in REGISTRY.of_kind(kind)}, kind
    for contract in REGISTRY:
        Draft202012Validator.check_schema(contract.schema)
        assert contract.owner and contract.description and contract.capability, contract.name
    assert REGISTRY.get("intent.received").ledger_type == "controlplane.intent.received"
    assert REGISTRY.for_ledger_type("controlplane.execution.step.blocked").name == "execution.step.blocked"
    assert REGISTRY.get("intent.submit").ledger_type == ""


def _import(dotted: str) -> object:
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        return import_string(dotted)


def test_every_surface_exists():
    """Each API path resolves to a view answering that method; each service imports; each CLI exists."""
    from django.core.management import get_commands

    for contract in REGISTRY:
        for surface in contract.api:
            method, path = surface.split(" ", 1)
            path = path.split("?")[0].replace("{trace_id}", "0" * 32).replace("{id}", "0" * 64)
            view = resolve(path).func
            actions = getattr(view, "actions", None)
            if actions is not None:
                assert method.lower() in actions, surface
            else:
                assert hasattr(getattr(view, "view_class", None) or view.cls, method.lower()), surface
        assert _import(contract.service) is not None
        for command in contract.cli:
            assert command.split()[1] in get_commands(), command


def test_a_payload_off_its_contract_is_reported():
    started = REGISTRY.get("execution.started")
    assert started.errors({"execution": "nope", "intent": "0" * 64, "plan": "0" * 64, "extra": 1}) == [
        "(root): Additional properties are not allowed ('extra' was unexpected)",
        "execution: 'nope' does not match '^[0-9a-f]{64}$'",
    ]
    assert REGISTRY.get("intent.submit").errors(
        {"idempotency_key": "k", "draft": {"goal": "g", "steps": []}}
    ) == ["draft/steps: [] should be non-empty"]


@pytest.fixture
def full_flow(django_capture_on_commit_callbacks, tmp_path, settings, monkeypatch):
    """The action flow through the services, down every path that writes an event."""
    capture = django_capture_on_commit_callbacks
    celery_app.conf.task_always_eager = True
    try:
        tenant = TenantFactory(slug="acme")
        agent = PrincipalFactory(tenant=tenant, name="deploy-agent", agent=True)
        alice = PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"])
        policy.profile_bootstrap(environment="dev")
        draft = {
            "goal": "echo twice",
            "context": {"ticket": "OPS-7"},
            "steps": [
                {"key": "a", "action": "noop.echo", "inputs": {"message": "one"}},
                {"key": "b", "action": "noop.echo", "inputs": {"message": "two"}, "depends_on": ["a"]},
            ],
        }
        submit = services.intent_submit
        assert REGISTRY.get("intent.submit").errors({"idempotency_key": "done", "draft": draft}) == []
        with capture(execute=True):
            done = submit(principal=agent, draft=draft, idempotency_key="done")
        with capture(execute=True):  # a completed step rolled back by its compensating action
            step_rollback(
                execution=Execution.objects.get(intent=done), step_key="a", actor=alice, reason="undo"
            )
        submit(
            principal=agent,
            draft={"goal": "x", "steps": [{"key": "a", "action": "nope"}]},
            idempotency_key="bad",
        )
        with capture(execute=True):  # an executor that fails: no runner is registered
            webhook = {"key": "a", "action": "http.webhook", "inputs": {"runner": "nobody", "operation": "x"}}
            submit(principal=agent, draft={"goal": "fails", "steps": [webhook]}, idempotency_key="fails")
        settings.CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS = 0.1
        with local_runner(tmp_path) as served:  # the reference runner: a retry, then success
            settings.CONTROLPLANE_RUNNER_SECRET = served.secret
            flaky = {"runner": "ops", "operation": "flaky", "payload": {"failures": 1}}
            flaky_draft = {
                "goal": "flaky",
                "steps": [{"key": "a", "action": "http.webhook", "inputs": flaky}],
            }
            with capture(execute=True):
                submit(principal=agent, draft=flaky_draft, idempotency_key="flaky")
            with capture(execute=True):
                services.step_runs_sweep(now=timezone.now() + timedelta(seconds=120))
            runner_grant_revoke(name="ops", tenant=agent.tenant, actor="cli", reason="moving it")
            runner_disable(name="ops", actor="cli", reason="decommissioned")
        lost = submit(principal=agent, draft=draft, idempotency_key="lost")  # a worker dies mid-step
        run_ = StepRun.objects.get(execution__intent=lost, step__key="a")
        assert steps._claim(run_.pk) is not None  # as tests/runtime/test_sweeper.py's start_and_die
        run_.refresh_from_db()
        with capture(execute=True):
            assert services.step_runs_sweep(now=run_.lease_expires_at + timedelta(seconds=1))["requeued"] == 1
        services.killswitch_set(scope="global", engaged=True, reason="drill", actor="cli")
        with capture(execute=True):
            submit(principal=agent, draft=draft, idempotency_key="killed")
        services.killswitch_set(scope="global", engaged=False, reason="over", actor="cli")
        holding = [True]  # a dispatch gate holds a step (a plugin down), then lets it go
        hold = gates.Hold(code="PLUGIN_UNHEALTHY", detail="waiting for plugin ops", data={"plugin": "ops"})
        gate = gates.DispatchGate(name="contract-test", check=lambda run: hold if holding[0] else None)
        monkeypatch.setitem(gates._GATES, gate.name, gate)
        with capture(execute=True):
            submit(principal=agent, draft=draft, idempotency_key="held")
        holding[0] = False
        with capture(execute=True):
            assert services.held_steps_recheck()["resumed"] == 1
        monkeypatch.delitem(gates._GATES, gate.name)
        created = policy.profile_create(name="assist", environment="dev", content=ASSIST, actor="test")
        policy.profile_activate(profile=created.profile, actor="test", reason="approvals for everything")

        def waiting(key: str) -> ApprovalRequest:
            intent = submit(principal=agent, draft=draft, idempotency_key=key)
            run_ = StepRun.objects.get(execution__intent=intent, step__key="a")
            return ApprovalRequest.objects.get(pk=run_.approval_id)

        request = waiting("approved")
        approvals.approvals_sweep(now=request.created_at + timedelta(seconds=61))  # escalated
        with capture(execute=True):
            approvals.approval_decide(
                approval=request,
                actor=alice,
                decision="approve",
                reason="ok",
                content_hash=request.content_hash,
            )
        request = waiting("rejected")
        approvals.approval_decide(
            approval=request, actor=alice, decision="reject", reason="no", content_hash=request.content_hash
        )
        request = waiting("expired")
        approvals.approvals_sweep(now=request.created_at + timedelta(seconds=601))
        request = waiting("cancelled")
        cancelled = Execution.objects.get(step_runs__approval=request)
        services.execution_cancel(execution=cancelled, actor=agent, reason="changed my mind")
        write_every_skill_event()
        write_every_learning_event(tenant=tenant, agent=agent, monkeypatch=monkeypatch, capture=capture)
        write_every_assignment_event(tenant)
        write_every_governance_event()
        write_every_channel_event()
        write_every_plugin_event()
    finally:
        celery_app.conf.task_always_eager = False


def test_every_event_the_action_flow_writes_validates_against_its_contract(full_flow):
    events = list(LedgerEvent.objects.filter(type__startswith="controlplane.").order_by("seq"))
    covered = [e for e in events if REGISTRY.covers(e.type)]
    failures = {}
    for event in covered:
        contract = REGISTRY.for_ledger_type(event.type)
        if contract is None:
            failures[event.seq] = f"{event.type} has no contract"
        elif errors := contract.errors(event.data):
            failures[event.seq] = f"{event.type}: {errors}"
    assert failures == {}
    # The flow wrote every event the registry describes, so none of the schemas went untested.
    assert {c.ledger_type for c in REGISTRY.of_kind(EVENT)} == {e.type for e in covered}
