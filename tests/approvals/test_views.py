"""The console approval queue: what is shown, filters, paging, decisions one by one and in bulk, refusals."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

import approvals.registry as registry
from approvals import services as approvals
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Execution, StepRun
from tests.console.flow import pending, prod_step_draft, submit
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dev_policy", "eager_tasks")]

HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/approvals/"}
TEST_SUBJECT = "test.console"


def _no_owner(request: ApprovalRequest) -> None:
    """The resolver of the test subject: it owns nothing, so a decision changes only the request."""


registry.register_subject(TEST_SUBJECT, _no_owner)


@pytest.fixture
def dora_client(client, decider):
    client.force_login(decider.user)
    return client


def open_test_request(requester, *, tier="critical", at=None, n=0) -> ApprovalRequest:
    return approvals.approval_request_open(
        subject_kind=TEST_SUBJECT,
        subject_id=f"thing-{n}",
        content_hash=f"{n:064x}",
        requested_by=requester,
        risk_tier=tier,
        quorum=1,
        summary={"thing": n},
        reason_codes=["POLICY_REQUIRES_APPROVAL"],
        at=at,
    )


def request_ids(response) -> list[str]:
    return re.findall(r'data-request="([0-9a-f]{64})"', response.content.decode())


def ledger_count() -> int:
    return LedgerEvent.objects.count()


# --- What the queue shows ---------------------------------------------------------------------------


def test_queue_full_page_and_fragment(dora_client, agent, django_capture_on_commit_callbacks):
    submit(agent, prod_step_draft(steps=2), "k1", django_capture_on_commit_callbacks)

    full = dora_client.get("/approvals/")
    fragment = dora_client.get("/approvals/", headers=HTMX)

    assert full.status_code == fragment.status_code == 200
    assert b"<html" in full.content and b'id="queue"' in full.content
    assert b"<html" not in fragment.content and fragment.content.lstrip().startswith(b"<section")
    assert b'id="queue"' in fragment.content and b'id="bulk-form"' not in fragment.content
    assert full["Vary"] == fragment["Vary"] == "HX-Request, Cookie"


def test_each_request_shows_what_is_approved_why_and_the_plan_around_it(
    dora_client, agent, django_capture_on_commit_callbacks
):
    intent = submit(agent, prod_step_draft(steps=3), "k1", django_capture_on_commit_callbacks, None)
    request = ApprovalRequest.objects.get()
    execution = Execution.objects.get(intent=intent)

    body = dora_client.get("/approvals/").content.decode()

    assert request_ids(dora_client.get("/approvals/")) == [request.pk]
    article = body[body.index(f'id="req-{request.pk}"') :]
    assert "noop.echo@1.0.0" in article and "restart checkout" in article
    # Exactly what is approved: the inputs, and the content hash the decision is bound to.
    assert "&quot;environment&quot;: &quot;prod&quot;" in article and request.content_hash in article
    # Why: the policy reason codes with their catalogue descriptions, and the matched rule.
    assert "POLICY_TIER_RAISED_PROD_TARGET" in article and "POLICY_REQUIRES_APPROVAL" in article
    assert "Every approval decision needs a reason." not in article
    assert "prod-target" in article
    # The plan around it: the sibling steps in order with their states now (s0, s1 ran; s2 waits).
    siblings = re.findall(
        r'<li class="(sibling-subject)?"><span class="mono">(\w+)</span> '
        r'<span class="muted small">noop.echo</span> <span class="badge badge-step-(\w+)">',
        article,
    )
    assert siblings == [
        ("", "s0", "completed"),
        ("", "s1", "completed"),
        ("sibling-subject", "s2", "waiting_approval"),
    ]
    assert f'href="/traces/{execution.trace_id}/"' in article
    assert "0/1 approvals" in article and "by acme/deploy-agent" in article


def test_the_queue_polls_itself_unless_rows_are_selected_or_a_reason_is_being_typed(dora_client):
    body = dora_client.get("/approvals/?tier=high").content.decode()
    queue = re.search(r'<section id="queue"[^>]*>', body).group(0)
    assert 'hx-get="/approvals/?tier=high"' in queue
    assert "every 5s [!document.querySelector(&#x27;#queue input:checked" in queue or (
        "every 5s [!document.querySelector('#queue input:checked" in queue
    )
    assert "document.activeElement.closest(" in queue


def test_the_queue_is_oldest_first_and_pages_by_25(dora_client, agent):
    now = timezone.now()
    made = [open_test_request(agent, at=now - timedelta(minutes=60 - i), n=i) for i in range(30)]

    first = dora_client.get("/approvals/")
    second = dora_client.get("/approvals/?page=2")

    assert request_ids(first) == [r.pk for r in made[:25]]
    assert request_ids(second) == [r.pk for r in made[25:]]
    assert b'<strong id="pending-count">30</strong> pending' in first.content
    assert b'rel="next" href="/approvals/?page=2"' in first.content
    assert b'rel="prev" href="/approvals/?page=1"' in second.content


def test_filters_by_tier_subject_and_age(dora_client, agent, django_capture_on_commit_callbacks):
    now = timezone.now()
    submit(agent, prod_step_draft(), "k1", django_capture_on_commit_callbacks)  # high, runtime.step, new
    step_request = ApprovalRequest.objects.get()
    old_critical = open_test_request(agent, tier="critical", at=now - timedelta(hours=2), n=1)
    new_critical = open_test_request(agent, tier="critical", at=now, n=2)

    assert request_ids(dora_client.get("/approvals/?tier=critical")) == [old_critical.pk, new_critical.pk]
    assert request_ids(dora_client.get("/approvals/?tier=high")) == [step_request.pk]
    assert request_ids(dora_client.get("/approvals/?kind=runtime.step")) == [step_request.pk]
    assert request_ids(dora_client.get("/approvals/?age=3600")) == [old_critical.pk]
    assert request_ids(dora_client.get("/approvals/?tenant=acme&tier=critical&age=3600")) == [old_critical.pk]


def test_invalid_filters_and_another_tenant_are_refused(dora_client):
    for query in ("tier=severe", "age=7", "tenant=globex", "page=0"):
        response = dora_client.get(f"/approvals/?{query}")
        assert response.status_code == 400, query
        assert b'data-code="VALIDATION_FAILED"' in response.content


def test_another_tenants_requests_are_never_shown(dora_client, agent):
    globex_bot = PrincipalFactory(tenant=TenantFactory(slug="globex"), agent=True)
    theirs = open_test_request(globex_bot, n=1)
    ours = open_test_request(agent, n=2)
    assert request_ids(dora_client.get("/approvals/")) == [ours.pk]
    assert theirs.pk not in dora_client.get("/approvals/").content.decode()


def test_the_page_costs_the_same_queries_for_3_or_40_pending(
    dora_client, agent, django_capture_on_commit_callbacks, django_assert_num_queries
):
    for i in range(3):
        submit(agent, prod_step_draft(f"goal {i}", steps=3), f"k{i}", django_capture_on_commit_callbacks)
    # session, user, principal, grants; count, page, approvals given, plan steps, policy trails, the
    # incidents the steps remediate (the incidents app's queue context); the engaged kill switches; the
    # enforcement banner's rollback toggle (cached 1 s)
    with django_assert_num_queries(12):
        small = dora_client.get("/approvals/")
    for i in range(3, 40):
        submit(agent, prod_step_draft(f"goal {i}", steps=3), f"k{i}", django_capture_on_commit_callbacks)
    with django_assert_num_queries(12):
        large = dora_client.get("/approvals/")
    assert len(request_ids(small)) == 3 and len(request_ids(large)) == 25


def test_reading_without_approvals_decide_shows_no_controls(client, agent):
    reader = PrincipalFactory(
        tenant=agent.tenant, human=True, capabilities=["console.view", "approvals.read"]
    )
    open_test_request(agent)
    client.force_login(reader.user)
    body = client.get("/approvals/").content
    assert len(request_ids(client.get("/approvals/"))) == 1
    assert b'type="checkbox"' not in body and b"req-decide" not in body and b"bulk-form" not in body


@pytest.mark.parametrize("url", ["/approvals/", "/executions/", "/killswitch/"])
def test_pages_need_their_capability(client, url):
    principal = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(principal.user)
    response = client.get(url)
    assert response.status_code == 403 and b'data-code="CAPABILITY_MISSING"' in response.content


# --- Deciding one ------------------------------------------------------------------------------------


def decide(client, request, decision="approve", reason="change window open", content_hash=None, **headers):
    return client.post(
        f"/approvals/{request.pk}/decide/",
        {
            "decision": decision,
            "reason": reason,
            "content_hash": request.content_hash if content_hash is None else content_hash,
        },
        headers=headers,
    )


def test_approving_one_runs_the_step_and_answers_with_the_refreshed_queue(
    dora_client, agent, decider, django_capture_on_commit_callbacks
):
    intent = submit(agent, prod_step_draft(steps=2), "k1", django_capture_on_commit_callbacks)
    other = open_test_request(agent, n=9)
    request = ApprovalRequest.objects.get(subject_kind="runtime.step")

    with django_capture_on_commit_callbacks(execute=True):
        response = decide(dora_client, request, **HTMX)

    assert response.status_code == 200 and b"<html" not in response.content
    assert b"approved." in response.content and request_ids(response) == [other.pk]
    request.refresh_from_db()
    assert request.status == "approved" and request.consumed_at is not None
    decision = ApprovalDecision.objects.get(request=request)
    assert (decision.approver, decision.reason) == (decider, "change window open")
    assert Execution.objects.get(intent=intent).status == "completed"
    decided = LedgerEvent.objects.get(type="controlplane.approval.request.decided")
    assert decided.actor == "acme/dora" and decided.data["reason"] == "change window open"


def test_the_refreshed_queue_keeps_the_filters_of_the_page(dora_client, agent):
    keep = open_test_request(agent, tier="critical", n=1)
    open_test_request(agent, tier="high", n=2)
    target = open_test_request(agent, tier="critical", n=3)
    response = decide(
        dora_client, target, **{**HTMX, "HX-Current-URL": "http://testserver/approvals/?tier=critical"}
    )
    assert request_ids(response) == [keep.pk]


def test_rejecting_one_blocks_the_step_and_fails_the_execution(
    dora_client, agent, django_capture_on_commit_callbacks
):
    intent = submit(agent, prod_step_draft(), "k1", django_capture_on_commit_callbacks)
    request = ApprovalRequest.objects.get()
    response = decide(dora_client, request, decision="reject", reason="not now", **HTMX)
    assert response.status_code == 200 and b"rejected." in response.content
    run = StepRun.objects.get(approval=request)
    assert (run.status, run.reason_codes) == ("blocked", ["APPROVAL_REJECTED"])
    assert Execution.objects.get(intent=intent).status == "failed"


def test_without_htmx_a_decision_redirects_to_the_queue_which_says_what_was_decided(dora_client, agent):
    request = open_test_request(agent)
    response = decide(dora_client, request)
    assert response.status_code == 302 and response["Location"] == f"/approvals/?decided={request.pk}"
    assert ApprovalRequest.objects.get(pk=request.pk).status == "approved"
    page = dora_client.get(response["Location"]).content.decode()
    assert f"request {request.pk[:12]} approved" in page and f'data-decided="{request.pk}"' in page


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"content_hash": "f" * 64}, 409, "APPROVAL_CONTENT_CHANGED"),
        ({"reason": "   "}, 400, "APPROVAL_REASON_REQUIRED"),
        ({"decision": "maybe"}, 400, "VALIDATION_FAILED"),
        ({"content_hash": "short"}, 400, "VALIDATION_FAILED"),
    ],
)
def test_a_refused_decision_shows_its_code_beside_its_card_and_writes_nothing(
    dora_client, agent, change, status, code
):
    request = open_test_request(agent)
    before = ledger_count()
    response = decide(dora_client, request, **{"decision": "approve", "reason": "ok", **change}, **HTMX)
    assert response.status_code == status
    assert f'data-code="{code}"'.encode() in response.content
    assert response["HX-Retarget"] == f"#req-notice-{request.pk}"
    assert b"way-back" not in response.content  # a fragment: the operator is still on the queue
    assert ledger_count() == before and not ApprovalDecision.objects.exists()
    assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"


def test_nobody_approves_their_own_request(dora_client, decider):
    own = open_test_request(decider)
    before = ledger_count()
    response = decide(dora_client, own, **HTMX)
    assert response.status_code == 403 and b'data-code="APPROVAL_SELF_APPROVAL"' in response.content
    assert ledger_count() == before


def test_unknown_or_foreign_request_is_not_found(dora_client):
    foreign = open_test_request(PrincipalFactory(tenant=TenantFactory(slug="globex"), agent=True))
    before = ledger_count()
    response = decide(dora_client, foreign, **HTMX)
    assert response.status_code == 404 and b'data-code="APPROVAL_NOT_FOUND"' in response.content
    assert ledger_count() == before and ApprovalRequest.objects.get(pk=foreign.pk).status == "pending"


def test_deciding_needs_approvals_decide(client, agent):
    reader = PrincipalFactory(
        tenant=agent.tenant, human=True, capabilities=["console.view", "approvals.read"]
    )
    client.force_login(reader.user)
    request = open_test_request(agent)
    response = decide(client, request, **HTMX)
    assert response.status_code == 403 and b"approvals.decide" in response.content
    assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"


def test_decide_is_post_only_and_needs_the_csrf_token(decider, agent):
    request = open_test_request(agent)
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(decider.user)
    assert csrf_client.get(f"/approvals/{request.pk}/decide/").status_code == 405
    before = ledger_count()
    response = decide(csrf_client, request)
    assert response.status_code == 403 and b'data-code="CSRF_FAILED"' in response.content
    assert ledger_count() == before and ApprovalRequest.objects.get(pk=request.pk).status == "pending"


# --- Bulk --------------------------------------------------------------------------------------------


def bulk(client, requests, decision="approve", reason="batch ok", hashes=None, **headers):
    hashes = hashes or {}
    return client.post(
        "/approvals/bulk/",
        {
            "decision": decision,
            "reason": reason,
            "request": [f"{r.pk}:{hashes.get(r.pk, r.content_hash)}" for r in requests],
        },
        headers=headers,
    )


def test_bulk_approve_decides_every_selected_request_with_one_reason(
    dora_client, agent, django_capture_on_commit_callbacks
):
    for i in range(3):
        submit(agent, prod_step_draft(f"goal {i}"), f"k{i}", django_capture_on_commit_callbacks)
    left = open_test_request(agent)
    chosen = [r for r in pending() if r.subject_kind == "runtime.step"]

    with django_capture_on_commit_callbacks(execute=True):
        response = bulk(dora_client, chosen, **HTMX)

    assert response.status_code == 200 and b"Approved 3 requests." in response.content
    assert request_ids(response) == [left.pk]
    assert {d.reason for d in ApprovalDecision.objects.all()} == {"batch ok"}
    assert set(Execution.objects.values_list("status", flat=True)) == {"completed"}


def test_bulk_is_all_or_nothing_and_names_the_request_at_fault(dora_client, agent):
    first, second = open_test_request(agent, n=1), open_test_request(agent, n=2)
    before = ledger_count()

    response = bulk(dora_client, [first, second], decision="reject", hashes={second.pk: "0" * 64}, **HTMX)

    assert response.status_code == 409 and b'data-code="APPROVAL_CONTENT_CHANGED"' in response.content
    assert f"request {second.pk[:12]}".encode() in response.content
    assert ledger_count() == before and not ApprovalDecision.objects.exists()
    assert [r.status for r in pending()] == ["pending", "pending"]


def test_a_refused_bulk_decision_is_shown_beside_the_card_at_fault(dora_client, agent):
    first, second = open_test_request(agent, n=1), open_test_request(agent, n=2)
    response = bulk(dora_client, [first, second], hashes={second.pk: "0" * 64}, **HTMX)
    assert response.status_code == 409 and response["HX-Retarget"] == f"#req-notice-{second.pk}"


# --- What the viewer cannot decide, and what a decision links to ----------------------------------------


def test_the_requesters_own_request_says_why_they_cannot_approve_it_instead_of_a_button(
    dora_client, decider, agent
):
    own = open_test_request(decider, n=1)
    other = open_test_request(agent, n=2)
    for response in (dora_client.get("/approvals/"), dora_client.get("/approvals/", headers=HTMX)):
        body = response.content.decode()
        card = body[body.index(f'id="req-{own.pk}"') : body.index(f'id="req-{other.pk}"')]
        assert 'data-code="APPROVAL_SELF_APPROVAL"' in card and "nobody approves their own request" in card
        assert "req-decide" not in card and 'type="checkbox"' not in card
        rest = body[body.index(f'id="req-{other.pk}"') :]
        assert "req-decide" in rest and "APPROVAL_SELF_APPROVAL" not in rest


def test_an_approval_given_already_says_it_waits_for_more_instead_of_a_button(dora_client, decider, agent):
    request = approvals.approval_request_open(
        subject_kind=TEST_SUBJECT,
        subject_id="two-people",
        content_hash="a" * 64,
        requested_by=agent,
        risk_tier="critical",
        quorum=2,
        summary={"thing": "two"},
        reason_codes=["POLICY_REQUIRES_APPROVAL"],
    )
    decide(dora_client, request, **HTMX)
    body = dora_client.get("/approvals/").content.decode()
    assert 'data-code="APPROVAL_DUPLICATE_DECISION"' in body and "waits for 1 more approver" in body
    assert "req-decide" not in body


def test_the_decision_notice_links_to_the_execution_and_its_trace(
    dora_client, agent, django_capture_on_commit_callbacks
):
    intent = submit(agent, prod_step_draft(), "k1", django_capture_on_commit_callbacks)
    request = ApprovalRequest.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = decide(dora_client, request, **HTMX)
    body = response.content.decode()
    trace = Execution.objects.get(intent=intent).trace_id
    assert f'data-decided="{request.pk}"' in body
    assert f'href="/traces/{trace}/" class="mono decided-execution"' in body
    assert f'href="/traces/{trace}/" class="decided-trace"' in body
    # A refusal left in the notice area is cleared by the success, out of band.
    assert '<div id="notice" class="notice-area" aria-live="polite" hx-swap-oob="true"></div>' in body


def test_a_step_of_an_incidents_remediation_says_which_incident(
    dora_client, agent, decider, django_capture_on_commit_callbacks
):
    from incidents.models import Incident
    from tests.incidents.factories import make_rule, open_incident

    make_rule(agent.tenant)
    incident = open_incident(agent.tenant)
    intent = submit(agent, prod_step_draft("roll back checkout"), "k1", django_capture_on_commit_callbacks)
    Incident.objects.filter(pk=incident.pk).update(remediation_intent=intent)  # as incident_mitigate links it
    submit(agent, prod_step_draft("unrelated"), "k2", django_capture_on_commit_callbacks)
    page = dora_client.get("/approvals/").content.decode()
    assert page.count("remediation of incident") == 1
    assert f'<a href="/incidents/{incident.pk}/">{incident.title} (open)</a>' in page
    request = ApprovalRequest.objects.get(summary__goal="roll back checkout")
    with django_capture_on_commit_callbacks(execute=True):
        response = decide(dora_client, request, **HTMX)
    assert f'href="/incidents/{incident.pk}/" class="decided-note"' in response.content.decode()


def test_the_reason_is_required_in_the_browser_too(dora_client, agent):
    open_test_request(agent)
    body = dora_client.get("/approvals/").content.decode()
    one = r'<input type="text" name="reason" placeholder="reason \(required\)"[^>]* required'
    bulk_reason = r'<input type="text" name="reason" placeholder="one reason for all[^>]* required'
    assert re.search(one, body) and re.search(bulk_reason, body)


def test_bulk_refusals_write_nothing(dora_client, agent):
    request = open_test_request(agent)
    before = ledger_count()
    nothing = dora_client.post("/approvals/bulk/", {"decision": "approve", "reason": "x"}, headers=HTMX)
    assert nothing.status_code == 400 and b"Select at least one request." in nothing.content
    malformed = dora_client.post(
        "/approvals/bulk/", {"decision": "approve", "reason": "x", "request": ["no-hash"]}, headers=HTMX
    )
    assert malformed.status_code == 400 and b'data-code="VALIDATION_FAILED"' in malformed.content
    too_many = dora_client.post(
        "/approvals/bulk/",
        {"decision": "approve", "reason": "x", "request": [f"{i:064x}:{'0' * 64}" for i in range(201)]},
        headers=HTMX,
    )
    assert too_many.status_code == 400 and b"At most 200 requests at once." in too_many.content
    unknown = dora_client.post(
        "/approvals/bulk/",
        {
            "decision": "approve",
            "reason": "x",
            "request": [f"{request.pk}:{request.content_hash}", f"{'e' * 64}:{'0' * 64}"],
        },
        headers=HTMX,
    )
    assert unknown.status_code == 404 and b'data-code="APPROVAL_NOT_FOUND"' in unknown.content
    no_reason = bulk(dora_client, [request], reason="", **HTMX)
    assert no_reason.status_code == 400 and b'data-code="APPROVAL_REASON_REQUIRED"' in no_reason.content
    assert ledger_count() == before and ApprovalRequest.objects.get(pk=request.pk).status == "pending"


# --- The dashboard's panel ---------------------------------------------------------------------------


def tier_rows(html: str) -> dict[str, tuple[str, str]]:
    """tier -> (pending count, the oldest's age as shown) of the approvals panel."""
    return {
        tier: (count, age)
        for tier, count, age in re.findall(
            r'<tr data-tier="([a-z]+)">.*?<td class="num">(\d+)</td><td>(.*?)</td></tr>', html
        )
    }


def test_the_panel_counts_pending_approvals_by_tier_with_the_oldest_waiting(dora_client, agent, decider):
    now = timezone.now()
    open_test_request(agent, tier="critical", at=now - timedelta(hours=3), n=1)
    open_test_request(agent, tier="critical", at=now - timedelta(minutes=5), n=2)
    open_test_request(agent, tier="high", at=now - timedelta(days=2), n=3)
    decided = open_test_request(agent, tier="low", n=4)
    approvals.approval_decide(
        approval=decided, actor=decider, decision="approve", reason="ok", content_hash=decided.content_hash
    )
    open_test_request(PrincipalFactory(tenant=TenantFactory(slug="globex"), agent=True), tier="medium", n=5)

    fragment = dora_client.get("/panels/approvals/", headers={"HX-Request": "true"})
    full = dora_client.get("/panels/approvals/")

    html = fragment.content.decode()
    assert b"<html" not in fragment.content and b"<html" in full.content
    rows = tier_rows(html)
    assert {tier: count for tier, (count, _) in rows.items()} == {
        "critical": "2",
        "high": "1",
        "medium": "0",
        "low": "0",
    }
    assert "3\xa0hours" in rows["critical"][1] and "2\xa0days" in rows["high"][1]
    assert rows["medium"][1] == rows["low"][1] == "—"
    assert '<td class="num" id="approvals-pending">3</td>' in html
    assert '<a href="/approvals/?tier=critical">' in html and '<a href="/approvals/">Queue →</a>' in html


def test_the_panel_says_when_nothing_waits(dora_client):
    html = dora_client.get("/panels/approvals/", headers={"HX-Request": "true"}).content.decode()
    assert '<p class="muted" id="approvals-pending">Nothing is waiting for a decision.</p>' in html


def test_without_approvals_read_there_is_no_panel_and_its_fragment_is_refused(client, agent):
    viewer = PrincipalFactory(
        tenant=agent.tenant, human=True, capabilities=["console.view", "executions.read"]
    )
    open_test_request(agent)
    client.force_login(viewer.user)

    assert b'id="panel-approvals"' not in client.get("/").content
    response = client.get("/panels/approvals/", headers={"HX-Request": "true"})
    assert response.status_code == 403 and b'data-code="CAPABILITY_MISSING"' in response.content
    assert b"approvals.read" in response.content


def test_the_panel_costs_one_query_however_many_wait(dora_client, agent, django_assert_num_queries):
    for n in range(30):
        open_test_request(agent, tier=["low", "medium", "high", "critical"][n % 4], n=n)
    with django_assert_num_queries(5):  # session, user, principal, grants; the counts by tier
        dora_client.get("/panels/approvals/", headers={"HX-Request": "true"})
