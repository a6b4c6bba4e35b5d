"""The approval queue in a real browser: it refreshes itself, but never under the operator's selection."""

from __future__ import annotations

import pytest

from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
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
    page.get_by_role("button", name="Reject selected").click()  # no reason given
    expect(page.locator("#notice .refusal .code")).to_have_text("APPROVAL_REASON_REQUIRED")
    assert ApprovalRequest.objects.get().status == "pending"
