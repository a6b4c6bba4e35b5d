"""The console's executions list and trace explorer: the tree as a timeline, every node's event verified."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime import traces
from controlplane.runtime.models import Execution
from tests.console.flow import TRACE, TRACEPARENT, prod_step_draft, submit
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dev_policy", "eager_tasks")]

HTMX = {"HX-Request": "true"}


@pytest.fixture
def dora_client(client, decider):
    client.force_login(decider.user)
    return client


@pytest.fixture
def approved_run(agent, decider, django_capture_on_commit_callbacks):
    """A two-step plan under TRACE whose second step dora approved; both steps ran."""
    intent = submit(
        agent, prod_step_draft(steps=2), "k1", django_capture_on_commit_callbacks, traceparent=TRACEPARENT
    )
    request = ApprovalRequest.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_decide(
            approval=request,
            actor=decider,
            decision="approve",
            reason="go",
            content_hash=request.content_hash,
        )
    return Execution.objects.get(intent=intent)


def seqs_shown(response) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', response.content.decode())]


def _tamper_data(seq: int, data: dict) -> None:
    """Rewrite a stored payload behind the model's back (append-only trigger off, in this transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ledger_ledgerevent DISABLE TRIGGER ledger_ledgerevent_no_update_delete")
        cursor.execute(
            "UPDATE ledger_ledgerevent SET data = %s::jsonb WHERE seq = %s", [json.dumps(data), seq]
        )
        cursor.execute("ALTER TABLE ledger_ledgerevent ENABLE TRIGGER ledger_ledgerevent_no_update_delete")


# --- Trace explorer ----------------------------------------------------------------------------------


def test_trace_page_full_and_fragment(dora_client, approved_run):
    full = dora_client.get(f"/traces/{TRACE}/")
    fragment = dora_client.get(f"/traces/{TRACE}/", headers=HTMX)
    assert full.status_code == fragment.status_code == 200
    assert b"<html" in full.content and b"<html" not in fragment.content
    assert b'<article id="trace"' in fragment.content


def test_the_timeline_is_the_tree_with_every_event_verified(dora_client, approved_run):
    trace = traces.trace_get(trace_id=TRACE, tenant=approved_run.tenant)

    response = dora_client.get(f"/traces/{TRACE}/")
    body = response.content.decode()

    # One node per tree node, in tree order, each carrying its ledger seq (the shared verdict event twice).
    assert seqs_shown(response) == [node.seq for node in trace.nodes()]
    kinds = re.findall(r'<li class="tnode tnode-(\w+)"', body)
    assert kinds == [node.kind for node in trace.nodes()]
    assert kinds[:4] == ["intent", "plan", "execution", "step"] and kinds[-1] == "outcome"
    assert body.count("tnode-verified") == len(kinds) and "badge-fail tnode-verified" not in body
    assert '<span class="badge badge-ok" id="trace-verification">chain verified</span>' in body
    assert re.search(r'id="trace-outcome"><span class="badge badge-exec-completed">completed</span>', body)
    assert "decision by acme/dora" in body and "“go”" in body
    assert f'href="/ledger/?trace={TRACE}"' in body  # dora holds ledger.read


def test_the_trace_header_says_the_goal_who_submitted_it_start_end_duration_and_outcome(
    dora_client, approved_run
):
    for response in (
        dora_client.get(f"/traces/{TRACE}/"),
        dora_client.get(f"/traces/{TRACE}/", headers=HTMX),
    ):
        body = response.content.decode()
        header = body[body.index('data-trace-header="1"') : body.index('class="panel trace-summary"')]
        assert '<h2 class="trace-goal">restart checkout</h2>' in header
        assert '<dd class="mono trace-submitter">acme/deploy-agent</dd>' in header
        assert f'<dd class="trace-start">{approved_run.started_at:%Y-%m-%d %H:%M:%S}</dd>' in header
        assert f'<dd class="trace-end">{approved_run.finished_at:%Y-%m-%d %H:%M:%S}</dd>' in header
        assert re.search(r'<dd class="trace-duration">\d+ s</dd>', header)
        assert '<span class="badge badge-exec-completed">completed</span>' in header


def test_the_trace_header_of_a_waiting_execution_says_what_it_waits_for(
    dora_client, agent, django_capture_on_commit_callbacks
):
    submit(agent, prod_step_draft("needs a person"), "k9", django_capture_on_commit_callbacks, TRACEPARENT)
    body = dora_client.get(f"/traces/{TRACE}/").content.decode()
    assert '<span class="badge badge-exec-running">waiting for approval</span>' in body
    assert '<dd class="trace-end">—</dd>' in body and " so far</dd>" in body


def test_a_tampered_event_fails_on_its_node_and_on_the_trace(dora_client, approved_run):
    decided = LedgerEvent.objects.get(type="controlplane.approval.request.decided")
    _tamper_data(decided.seq, {**decided.data, "reason": "someone else's reason"})

    body = dora_client.get(f"/traces/{TRACE}/").content.decode()

    assert f"verification failed at #{decided.seq}" in body
    assert body.count('badge-fail tnode-verified">failed <code class="code">LEDGER_HASH_MISMATCH</code>') == 1


def test_a_node_expands_to_its_event_and_its_verification(dora_client, approved_run):
    completed = LedgerEvent.objects.filter(type="controlplane.execution.step.completed").last()

    fragment = dora_client.get(f"/traces/{TRACE}/events/{completed.seq}/", headers=HTMX)
    full = dora_client.get(f"/traces/{TRACE}/events/{completed.seq}/")

    assert fragment.status_code == 200 and b"<html" not in fragment.content
    body = fragment.content.decode()
    assert 'tevent-status">verified</span>' in body and body.count('class="check check-passed"') == 4
    assert completed.hash in body and "&quot;environment&quot;: &quot;prod&quot;" in body
    assert f'href="/ledger/{completed.seq}/"' in body
    assert b"<html" in full.content and b"\xe2\x86\x90 Trace" in full.content


def test_expanding_an_event_outside_the_trace_is_not_found(dora_client, approved_run):
    outside = LedgerEvent.objects.get(type="controlplane.policy.profile.activated")
    response = dora_client.get(f"/traces/{TRACE}/events/{outside.seq}/", headers=HTMX)
    assert response.status_code == 404 and b'data-code="NOT_FOUND"' in response.content
    assert response["HX-Retarget"] == "#notice"


def test_unknown_malformed_and_foreign_traces_are_refused(dora_client, approved_run, client):
    unknown = dora_client.get("/traces/0af7651916cd43dd8448eb211c80319c/")
    assert unknown.status_code == 404 and b'data-code="TRACE_NOT_FOUND"' in unknown.content
    malformed = dora_client.get("/traces/xyz/")
    assert malformed.status_code == 400 and b'data-code="TRACE_ID_INVALID"' in malformed.content
    outsider = PrincipalFactory(
        tenant=TenantFactory(slug="globex"), human=True, capabilities=["console.view", "executions.read"]
    )
    client.force_login(outsider.user)
    foreign = client.get(f"/traces/{TRACE}/")
    assert foreign.status_code == 404 and b'data-code="TRACE_NOT_FOUND"' in foreign.content
    seq = LedgerEvent.objects.get(type="controlplane.intent.received").seq
    assert client.get(f"/traces/{TRACE}/events/{seq}/").status_code == 404


def test_the_trace_form_goes_to_the_trace(dora_client, approved_run):
    response = dora_client.get(f"/traces/?trace_id={TRACE.upper()}")
    assert response.status_code == 302 and response["Location"] == f"/traces/{TRACE}/"
    refused = dora_client.get("/traces/?trace_id=../../etc")
    assert refused.status_code == 400 and b'data-code="TRACE_ID_INVALID"' in refused.content


def test_the_trace_page_costs_the_same_queries_for_2_or_12_steps(
    dora_client, agent, django_capture_on_commit_callbacks, django_assert_num_queries
):
    small = "00-11111111111111111111111111111111-00f067aa0ba902b7-01"
    large = "00-22222222222222222222222222222222-00f067aa0ba902b7-01"
    low = [{"key": f"s{i}", "action": "noop.echo", "inputs": {"message": str(i)}} for i in range(12)]
    submit(agent, {"goal": "small", "steps": low[:2]}, "k1", django_capture_on_commit_callbacks, small)
    submit(agent, {"goal": "large", "steps": low}, "k2", django_capture_on_commit_callbacks, large)
    # session, user, principal, grants; the trace's four (no approvals here: no decisions to read); the
    # events, their predecessors' hashes and the keys to verify them
    with django_assert_num_queries(11):
        assert dora_client.get(f"/traces/{'1' * 32}/").status_code == 200
    with django_assert_num_queries(11):
        response = dora_client.get(f"/traces/{'2' * 32}/")
    assert (
        response.content.decode().count("tnode-verified") == 3 + 3 * 12 + 1
    )  # intent, plan, execution; step, run, outcome each; end


# --- Executions ------------------------------------------------------------------------------------


def test_executions_page_lists_the_tenants_executions_with_their_traces(
    dora_client, agent, django_capture_on_commit_callbacks
):
    done = submit(
        agent,
        {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo"}]},
        "k1",
        django_capture_on_commit_callbacks,
    )
    waiting = submit(agent, prod_step_draft(), "k2", django_capture_on_commit_callbacks)
    globex_bot = PrincipalFactory(tenant=TenantFactory(slug="globex"), agent=True)
    submit(globex_bot, {"goal": "theirs", "steps": [{"key": "a", "action": "noop.echo"}]}, "k3")

    full = dora_client.get("/executions/")
    fragment = dora_client.get("/executions/?status=completed", headers=HTMX)

    assert b"<html" in full.content and b"<html" not in fragment.content
    body = full.content.decode()
    shown = re.findall(r'data-execution="(\w+)"', body)
    assert shown == [waiting.execution.pk, done.execution.pk]
    assert f'href="/traces/{done.trace_id}/"' in body and "theirs" not in body
    assert re.findall(r'data-execution="(\w+)"', fragment.content.decode()) == [done.execution.pk]
    refused = dora_client.get("/executions/?status=bogus")
    assert refused.status_code == 400 and b'data-code="VALIDATION_FAILED"' in refused.content


def test_executions_page_says_what_each_waits_for_in_words_longest_waiting_first(
    dora_client, agent, django_capture_on_commit_callbacks
):
    from controlplane.runtime import services as runtime

    waited_longest = submit(agent, prod_step_draft("first to wait"), "k1", django_capture_on_commit_callbacks)
    done = submit(
        agent,
        {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo"}]},
        "k2",
        django_capture_on_commit_callbacks,
    )
    runtime.killswitch_set(scope="tenant", target="acme", engaged=True, reason="drill", actor="cli")
    held = submit(
        agent,
        {"goal": "held", "steps": [{"key": "a", "action": "noop.echo"}]},
        "k3",
        django_capture_on_commit_callbacks,
    )
    Execution.objects.filter(pk=waited_longest.execution.pk).update(
        started_at=waited_longest.execution.started_at - timedelta(hours=2, minutes=3)
    )
    full = dora_client.get("/executions/").content.decode()
    fragment = dora_client.get("/executions/", headers=HTMX).content.decode()
    for body in (full, fragment):
        rows = re.findall(
            r'data-execution="(\w+)".*?class="nowrap duration">([^<]*)<.*?class="state">.*?>([^<]*)<',
            body,
            re.S,
        )
        assert [(pk, state) for pk, _, state in rows] == [
            (waited_longest.execution.pk, "waiting for approval"),
            (held.execution.pk, "held by the kill switch"),
            (done.execution.pk, "completed"),
        ]
        assert rows[0][1].startswith("2 h 03 min") and rows[2][1].endswith(" s")


def test_executions_page_pages_by_25(dora_client, agent, django_assert_num_queries):
    for i in range(27):
        submit(agent, {"goal": f"g{i}", "steps": [{"key": "a", "action": "noop.echo"}]}, f"k{i}")
    with django_assert_num_queries(7):  # session, user, principal, grants; count, page, its steps
        first = dora_client.get("/executions/")
    assert len(re.findall(r"data-execution=", first.content.decode())) == 25
    assert b'rel="next" href="/executions/?page=2"' in first.content
    second = dora_client.get("/executions/?page=2")
    assert len(re.findall(r"data-execution=", second.content.decode())) == 2
