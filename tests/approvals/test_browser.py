"""The approval queue in a real browser: it refreshes itself, but never under the operator's selection; a
decision needs a reason (the browser asks, the service refuses a blank one beside its card); the notice
links to the trace; the requester's own request says why they cannot approve it."""

from __future__ import annotations

import re

import pytest

from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.runtime.models import Execution
from tests.browser import sign_in
from tests.console.flow import DECIDER, prod_step_draft, submit
from tests.identity.factories import PrincipalFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dev_policy"),
]

expect = pytest.importorskip("playwright.sync_api").expect

POLL_MS = 5_000


@pytest.fixture(autouse=True)
def _no_leftover_tasks():
    """Approved steps are published to this run's queue and nobody consumes them here: clear it after."""
    yield
    celery_app.control.purge()


def test_the_queue_refreshes_itself_except_while_rows_are_selected_and_bulk_approves(page, acme, agent):
    PrincipalFactory(tenant=acme, name="dora", human=True, user__username="dora", capabilities=DECIDER)
    submit(agent, prod_step_draft("restart checkout"), "k1")
    submit(agent, prod_step_draft("restart payments"), "k2")
    sign_in(page, "dora")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.goto("/approvals/")
    rows = page.locator("#queue article.req")
    expect(rows).to_have_count(2)
    page.evaluate("window.__stillHere = true")

    # A row is ticked: a new request arrives, but the list is not swapped under the operator's hand.
    rows.nth(0).locator("input[type=checkbox]").check()
    expect(page.locator(".paused-note")).to_be_visible()
    submit(agent, prod_step_draft("restart search"), "k3")
    page.wait_for_timeout(POLL_MS + 1_500)  # more than one polling period
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("input[type=checkbox]")).to_be_checked()

    # A reason being typed in a row holds the list too.
    rows.nth(0).locator("input[type=checkbox]").uncheck()
    rows.nth(1).locator("input[name=reason]").fill("half-typed")
    page.locator("h1").click()  # focus leaves the list; the text alone must hold it
    page.wait_for_timeout(POLL_MS + 1_500)
    expect(rows).to_have_count(2)
    expect(rows.nth(1).locator("input[name=reason]")).to_have_value("half-typed")

    # Nothing selected, nothing typed: the next poll brings the new request in, without a reload.
    rows.nth(1).locator("input[name=reason]").fill("")
    page.locator("h1").click()
    expect(rows).to_have_count(3, timeout=POLL_MS * 3)
    expect(page.locator("#pending-count")).to_have_text("3")
    assert page.evaluate("window.__stillHere") is True

    # Bulk: tick two, one reason, approve both.
    rows.nth(0).locator("input[type=checkbox]").check()
    rows.nth(2).locator("input[type=checkbox]").check()
    page.fill("#bulk-form input[name=reason]", "change window open")
    page.get_by_role("button", name="Approve selected").click()
    expect(page.locator("#decided")).to_have_text("Approved 2 requests.")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("restart payments")
    expect(page.locator("#bulk-form input[name=reason]")).to_have_value("")
    assert page.evaluate("window.__stillHere") is True
    statuses = dict(ApprovalRequest.objects.values_list("summary__goal", "status"))
    assert statuses == {
        "restart checkout": "approved",
        "restart payments": "pending",
        "restart search": "approved",
    }


def test_a_refused_bulk_decision_shows_its_code_and_decides_nothing(page, acme, agent):
    PrincipalFactory(tenant=acme, name="dora", human=True, user__username="dora", capabilities=DECIDER)
    submit(agent, prod_step_draft("restart checkout"), "k1")
    sign_in(page, "dora")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.goto("/approvals/")
    page.locator("#queue article.req input[type=checkbox]").check()
    page.get_by_role("button", name="Reject selected").click()  # no reason: the browser asks for one
    assert page.locator("#bulk-form input[name=reason]").evaluate("e => e.validity.valueMissing") is True
    page.fill("#bulk-form input[name=reason]", "   ")  # blank passes the browser, not the service
    page.get_by_role("button", name="Reject selected").click()
    request = ApprovalRequest.objects.get()
    expect(page.locator(f"#req-notice-{request.pk} .refusal .code")).to_have_text("APPROVAL_REASON_REQUIRED")
    assert ApprovalRequest.objects.get().status == "pending"


def test_approve_without_then_with_a_reason_and_follow_the_notice_to_the_trace(page, acme, agent):
    PrincipalFactory(tenant=acme, name="dora", human=True, user__username="dora", capabilities=DECIDER)
    submit(agent, prod_step_draft("restart checkout"), "k1")
    submit(agent, prod_step_draft("restart payments"), "k2")
    first, second = ApprovalRequest.objects.order_by("created_at", "id")
    sign_in(page, "dora")
    expect(page.locator("h1")).to_have_text("Dashboard")
    # The navigation says what waits, once the bar has fetched its badges.
    expect(page.locator('#cp-nav a[href="/approvals/"] .nav-badge')).to_have_text("2")
    page.goto("/approvals/")
    one, two = page.locator(f"#req-{first.pk}"), page.locator(f"#req-{second.pk}")

    # No reason: the browser asks for one, and nothing is sent.
    one.get_by_role("button", name="Approve", exact=True).click()
    assert one.locator("input[name=reason]").evaluate("e => e.validity.valueMissing") is True
    # A blank reason passes the browser; the service refuses it, and the refusal is shown on that card.
    one.locator("input[name=reason]").fill("   ")
    one.get_by_role("button", name="Approve", exact=True).click()
    expect(one.locator(".req-notice .refusal .code")).to_have_text("APPROVAL_REASON_REQUIRED")
    expect(two.locator(".req-notice")).to_be_empty()
    assert ApprovalRequest.objects.get(pk=first.pk).status == "pending"

    # With a reason, on the other card: approved; the stale refusal is gone; the notice links onwards.
    two.locator("input[name=reason]").fill("change window open")
    two.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#decided")).to_have_text(f"Request {second.pk[:12]}: approved.")
    expect(page.locator(".req-notice .refusal")).to_have_count(0)
    expect(page.locator("#queue article.req")).to_have_count(1)
    assert ApprovalRequest.objects.get(pk=second.pk).status == "approved"
    trace = Execution.objects.get(intent__idempotency_key="k2").trace_id
    page.locator("#decided-links a.decided-trace").click()
    expect(page).to_have_url(re.compile(rf"/traces/{trace}/$"))


def test_the_requesters_own_request_says_why_they_cannot_approve_it(page, acme):
    dora = PrincipalFactory(
        tenant=acme, name="dora", human=True, user__username="dora", capabilities=[*DECIDER, "intents.submit"]
    )
    submit(dora, prod_step_draft("restart checkout"), "mine")
    request = ApprovalRequest.objects.get()
    assert request.requested_by == dora
    sign_in(page, "dora")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.goto("/approvals/")
    card = page.locator(f"#req-{request.pk}")
    expect(card.locator(".req-blocked")).to_contain_text("APPROVAL_SELF_APPROVAL")
    expect(card.locator(".req-blocked")).to_contain_text("nobody approves their own request")
    expect(card.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    expect(card.locator("input[type=checkbox]")).to_have_count(0)
