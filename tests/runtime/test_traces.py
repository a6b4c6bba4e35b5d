"""Traces: `GET /api/v1/traces/{trace_id}/` and `manage.py trace show`, built from the ledger."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Q
from django.utils import timezone

from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution, Intent
from controlplane.runtime.services import step_runs_sweep
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.runtime.support import local_runner

pytestmark = pytest.mark.django_db

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"

# Step `b` names a production target: the dev profile raises it to high, so a person must approve it.
DRAFT = {
    "goal": "echo, then echo in prod",
    "steps": [
        {"key": "a", "action": "noop.echo", "inputs": {"message": "one"}},
        {
            "key": "b",
            "action": "noop.echo",
            "inputs": {"message": "two", "target": {"environment": "prod"}},
            "depends_on": ["a"],
        },
    ],
}


@pytest.fixture(autouse=True)
def _setup():
    celery_app.conf.task_always_eager = True
    policy.profile_bootstrap(environment="dev")
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


@pytest.fixture
def agent(tenant):
    return PrincipalFactory(tenant=tenant, name="bot", agent=True, capabilities=["intents.submit"])


@pytest.fixture
def reader(tenant):
    return token_for(PrincipalFactory(tenant=tenant, name="reader", capabilities=["executions.read"]))


@pytest.fixture
def alice(tenant):
    return PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"])


def run_approved(agent, alice, capture) -> Intent:
    """Submit DRAFT under TRACEPARENT, let step a run, and have alice approve step b, which then runs."""
    from approvals import services as approvals

    with capture(execute=True):
        intent = services.intent_submit(
            principal=agent, draft=DRAFT, idempotency_key="k-1", traceparent=TRACEPARENT
        )
    request = ApprovalRequest.objects.get(status="pending")
    with capture(execute=True):
        approvals.approval_decide(
            approval=request,
            actor=alice,
            decision="approve",
            reason="change window open",
            content_hash=request.content_hash,
        )
    return intent


def get_trace(client, token, trace_id=TRACE):
    return client.get(f"/api/v1/traces/{trace_id}/", HTTP_AUTHORIZATION=f"Bearer {token}")


def walk(node):
    yield node
    for child in node["children"]:
        yield from walk(child)


def shape(node) -> tuple:
    """(kind, status, event type, children's shapes): the tree without ids, times and hashes."""
    return (node["kind"], node["status"], node["event_type"], [shape(c) for c in node["children"]])


def test_the_trace_is_the_tree_from_intent_to_outcome_each_node_on_the_ledger(
    client, agent, alice, reader, django_capture_on_commit_callbacks
):
    intent = run_approved(agent, alice, django_capture_on_commit_callbacks)
    execution = Execution.objects.get(intent=intent)
    assert execution.status == "completed" and intent.trace_id == TRACE

    response = get_trace(client, reader)

    assert response.status_code == 200
    body = response.json()
    assert (body["trace_id"], body["tenant"]) == (TRACE, "acme")
    assert len(body["roots"]) == 1
    root = body["roots"][0]
    ev = "controlplane.execution."
    assert shape(root) == (
        "intent",
        "compiled",
        "controlplane.intent.received",
        [
            (
                "plan",
                "compiled",
                "controlplane.plan.compiled",
                [
                    (
                        "execution",
                        "completed",
                        "controlplane.execution.started",
                        [
                            (
                                "step",
                                "completed",
                                "controlplane.plan.verified",
                                [
                                    (
                                        "run",
                                        "completed",
                                        ev + "step.started",
                                        [("outcome", "completed", ev + "step.completed", [])],
                                    )
                                ],
                            ),
                            (
                                "step",
                                "completed",
                                "controlplane.plan.verified",
                                [
                                    (
                                        "approval",
                                        "approved",
                                        "controlplane.approval.request.opened",
                                        [
                                            (
                                                "decision",
                                                "approve",
                                                "controlplane.approval.request.decided",
                                                [],
                                            ),
                                            (
                                                "approval_state",
                                                "approved",
                                                "controlplane.approval.request.approved",
                                                [],
                                            ),
                                            (
                                                "approval_state",
                                                "consumed",
                                                "controlplane.approval.request.consumed",
                                                [],
                                            ),
                                        ],
                                    ),
                                    (
                                        "run",
                                        "completed",
                                        ev + "step.started",
                                        [("outcome", "completed", ev + "step.completed", [])],
                                    ),
                                ],
                            ),
                            ("outcome", "completed", ev + "completed", []),
                        ],
                    )
                ],
            )
        ],
    )
    nodes = list(walk(root))
    # Every node names the ledger event that records it: its seq and hash are the chain's.
    for node in nodes:
        stored = LedgerEvent.objects.get(seq=node["seq"])
        assert (stored.hash, stored.type) == (node["hash"], node["event_type"])
    # Every ledger event of the execution, its intent, plan and approval is in the tree exactly once
    # (the verdict event is shared by the two steps it decided).
    approval = ApprovalRequest.objects.get()
    recorded = set(
        LedgerEvent.objects.filter(
            subject__in=[
                f"intent/{intent.pk}",
                f"plan/{intent.plan_id}",
                f"execution/{execution.pk}",
                f"approval/{approval.pk}",
            ]
        ).values_list("seq", flat=True)
    )
    assert {n["seq"] for n in nodes} == recorded and body["events"] == len(recorded)
    step_a, step_b = nodes[3], [n for n in nodes if n["kind"] == "step"][1]
    assert (step_a["detail"]["verdict"], step_a["detail"]["tier"]) == ("allow", "low")
    assert (step_b["detail"]["verdict"], step_b["detail"]["tier"]) == ("require_approval", "high")
    assert "POLICY_TIER_RAISED_PROD_TARGET" in step_b["reason_codes"]
    decision = next(n for n in nodes if n["kind"] == "decision")
    assert decision["detail"] == {
        "approver": "acme/alice",
        "decision": "approve",
        "reason": "change window open",
        "content_hash": approval.content_hash,
    }
    outcome_b = [n for n in nodes if n["kind"] == "outcome"][1]
    assert outcome_b["detail"]["outcome"]["echo"] == DRAFT["steps"][1]["inputs"]


def test_the_approval_and_its_decisions_join_the_actions_trace(
    agent, alice, django_capture_on_commit_callbacks
):
    run_approved(agent, alice, django_capture_on_commit_callbacks)
    request = ApprovalRequest.objects.get()
    events = LedgerEvent.objects.filter(subject=f"approval/{request.id}").order_by("seq")
    # opened by the runtime, decided by alice in her own request context, granted and consumed
    assert len(events) >= 3
    assert {e.traceparent.split("-")[1] for e in events} == {TRACE}


def test_a_rejected_draft_traces_to_its_refusal(client, agent, reader):
    bad = {
        "goal": "loop",
        "steps": [
            {"key": "a", "action": "noop.echo", "depends_on": ["b"]},
            {"key": "b", "action": "noop.echo", "depends_on": ["a"]},
        ],
    }
    services.intent_submit(principal=agent, draft=bad, idempotency_key="k-2", traceparent=TRACEPARENT)

    root = get_trace(client, reader).json()["roots"][0]

    assert shape(root) == (
        "intent",
        "rejected",
        "controlplane.intent.received",
        [("plan", "rejected", "controlplane.plan.rejected", [])],
    )
    assert root["children"][0]["reason_codes"] == ["PLAN_CYCLE"]


def test_a_step_held_by_the_kill_switch_and_cancelled_on_release(
    client, agent, reader, django_capture_on_commit_callbacks
):
    services.killswitch_set(scope="global", engaged=True, reason="incident", actor="test")
    with django_capture_on_commit_callbacks(execute=True):
        services.intent_submit(
            principal=agent,
            draft={
                "goal": "two",
                "steps": [
                    {"key": "a", "action": "noop.echo"},
                    {"key": "b", "action": "noop.echo", "depends_on": ["a"]},
                ],
            },
            idempotency_key="k-3",
            traceparent=TRACEPARENT,
        )
    services.killswitch_set(scope="global", engaged=False, reason="not needed", actor="test", held="cancel")

    execution = get_trace(client, reader).json()["roots"][0]["children"][0]["children"][0]

    step_a, step_b, final = execution["children"]
    held = step_a["children"][0]
    assert (held["event_type"], held["reason_codes"]) == (
        "controlplane.execution.step.held",
        ["KILL_SWITCH_ENGAGED"],
    )
    # A step stopped with its execution has no event of its own; it points at the execution's last one.
    assert (step_b["children"][0]["status"], step_b["children"][0]["seq"]) == ("cancelled", final["seq"])
    assert final["event_type"] == "controlplane.execution.cancelled"


def test_events_carrying_the_trace_that_no_node_claims_are_listed_too(client, agent, reader):
    services.intent_submit(principal=agent, draft=DRAFT, idempotency_key="k-4", traceparent=TRACEPARENT)

    other = ledger_append(
        type="controlplane.test.annotated",
        subject="note/1",
        data={"note": "same trace"},
        tenant="acme",
        traceparent=TRACEPARENT,
    )
    ledger_append(
        type="controlplane.test.theirs", subject="note/2", data={}, tenant="globex", traceparent=TRACEPARENT
    )

    roots = get_trace(client, reader).json()["roots"]

    assert [r["kind"] for r in roots] == ["intent", "event"]
    assert (roots[1]["seq"], roots[1]["title"]) == (other.seq, "controlplane.test.annotated")


def test_every_attempt_is_a_run_and_a_retry_ends_its_attempt(
    client, reader, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS = 0.25
    service = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="ops-bot")  # medium runs alone
    with local_runner(tmp_path) as runner:
        settings.CONTROLPLANE_RUNNER_SECRET = runner.secret
        with django_capture_on_commit_callbacks(execute=True):
            services.intent_submit(
                principal=service,
                draft={
                    "goal": "flaky",
                    "steps": [
                        {
                            "key": "a",
                            "action": "http.webhook",
                            "inputs": {"runner": "ops", "operation": "flaky", "payload": {"failures": 1}},
                        }
                    ],
                },
                idempotency_key="k-8",
                traceparent=TRACEPARENT,
            )
        with django_capture_on_commit_callbacks(execute=True):  # the backoff passed: beat's sweep sends it
            step_runs_sweep(now=timezone.now() + timedelta(seconds=120))

    step = get_trace(client, reader).json()["roots"][0]["children"][0]["children"][0]["children"][0]

    ev = "controlplane.execution.step."
    assert shape(step) == (
        "step",
        "completed",
        "controlplane.plan.verified",
        [
            (
                "run",
                "retry_scheduled",
                ev + "started",
                [("attempt_end", "retry_scheduled", ev + "retry_scheduled", [])],
            ),
            ("run", "completed", ev + "started", [("outcome", "completed", ev + "completed", [])]),
        ],
    )
    assert [run["title"] for run in step["children"]] == ["run attempt 1", "run attempt 2"]
    assert step["children"][0]["children"][0]["reason_codes"] == ["RUNNER_ERROR"]


def test_unknown_malformed_and_foreign_traces_are_refused_with_their_codes(client, agent, reader):
    services.intent_submit(principal=agent, draft=DRAFT, idempotency_key="k-5", traceparent=TRACEPARENT)
    unknown = get_trace(client, reader, "0af7651916cd43dd8448eb211c80319c")
    assert unknown.status_code == 404 and unknown.json()["code"] == "TRACE_NOT_FOUND"
    malformed = get_trace(client, reader, "not-a-trace")
    assert malformed.status_code == 400 and malformed.json()["code"] == "TRACE_ID_INVALID"
    foreign = token_for(
        PrincipalFactory(tenant=TenantFactory(slug="globex"), capabilities=["executions.read"])
    )
    refused = get_trace(client, foreign)
    assert refused.status_code == 404 and refused.json()["code"] == "TRACE_NOT_FOUND"
    no_capability = token_for(PrincipalFactory(tenant=agent.tenant, capabilities=["approvals.read"]))
    missing = get_trace(client, no_capability)
    assert missing.status_code == 403 and missing.json()["code"] == "CAPABILITY_MISSING"
    assert get_trace(client, "").status_code == 401


def test_the_query_count_does_not_grow_with_the_plan(
    client, agent, reader, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    steps = [{"key": f"s{i}", "action": "noop.echo", "inputs": {"message": str(i)}} for i in range(12)]
    with django_capture_on_commit_callbacks(execute=True):
        services.intent_submit(
            principal=agent,
            draft={"goal": "many", "steps": steps},
            idempotency_key="k-6",
            traceparent=TRACEPARENT,
        )
    # Authentication (token, principal, grants) and the trace's five queries at most.
    with django_assert_max_num_queries(11):
        response = get_trace(client, reader)
    nodes = list(walk(response.json()["roots"][0]))
    assert sum(1 for n in nodes if n["kind"] == "outcome") == 13


# --- manage.py trace show --------------------------------------------------------------------------------


def call(*args: str) -> str:
    out = StringIO()
    call_command("trace", *args, stdout=out)
    return out.getvalue()


def test_trace_show_prints_the_tree_with_seqs_and_hashes(agent, alice, django_capture_on_commit_callbacks):
    intent = run_approved(agent, alice, django_capture_on_commit_callbacks)
    received = LedgerEvent.objects.get(type="controlplane.intent.received")
    decided = LedgerEvent.objects.get(type="controlplane.approval.request.decided")

    lines = call("show", TRACE).splitlines()

    count = LedgerEvent.objects.filter(Q(trace_id=TRACE) | Q(subject__startswith="approval/")).count()
    assert lines[0] == f"trace {TRACE} tenant acme ({count} ledger events)"
    assert lines[1] == f"└─ intent {intent.pk[:12]}: compiled  #{received.seq} {received.hash[:16]}"
    assert any(
        "├─ step b · noop.echo: completed verdict=require_approval tier=high [" in line for line in lines
    )
    assert any(
        line.endswith(
            f"├─ decision by acme/alice: approve reason='change window open'  "
            f"#{decided.seq} {decided.hash[:16]}"
        )
        for line in lines
    )
    assert lines[-1].startswith("         └─ execution outcome: completed  #")


def test_trace_show_json_is_the_apis_body(client, agent, alice, reader, django_capture_on_commit_callbacks):
    run_approved(agent, alice, django_capture_on_commit_callbacks)
    api_body = get_trace(client, reader).json()
    api_body.pop("meta")  # the API's telemetry envelope (docs/telemetry.md); the CLI prints the body
    assert json.loads(call("show", TRACE, "--json")) == api_body
    assert json.loads(call("show", TRACE, "--json", "--tenant", "acme"))["tenant"] == "acme"


def test_trace_show_refusals_carry_their_codes(agent):
    with pytest.raises(CommandError, match=r"^TRACE_NOT_FOUND: "):
        call("show", TRACE)
    with pytest.raises(CommandError, match=r"^TRACE_ID_INVALID: "):
        call("show", "xyz")
    services.intent_submit(principal=agent, draft=DRAFT, idempotency_key="k-7", traceparent=TRACEPARENT)
    with pytest.raises(CommandError, match=r"^TENANT_NOT_FOUND: "):
        call("show", TRACE, "--tenant", "nobody")
    TenantFactory(slug="globex")
    with pytest.raises(CommandError, match=r"^TRACE_NOT_FOUND: "):
        call("show", TRACE, "--tenant", "globex")
