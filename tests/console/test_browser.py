"""The console's flows in a real browser: Debian's Chromium driven by Playwright against a live server."""

from __future__ import annotations

import re

import pytest

from controlplane.ledger.models import LedgerEvent, VerificationRun
from tests.console.conftest import append, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

expect = pytest.importorskip("playwright.sync_api").expect


def test_operator_signs_in_verifies_pages_filters_and_opens_a_verified_event(page, operator):
    for i in range(30):
        append("controlplane.test.paged", subject=f"job/{i}", data={"i": i})
    special = append("controlplane.test.special", subject="job/special", data={"answer": 42})
    append("controlplane.test.theirs", tenant="globex")

    # Sign in: the dashboard, with the principal and the environment in the header.
    sign_in(page)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".topbar .principal")).to_have_text("acme/alice")
    expect(page.locator(".topbar .env")).to_have_text("dev")
    expect(page.locator("#last-verification")).to_contain_text("Never verified.")

    # Verify now: the integrity panel is swapped in place (out of band), the page is not reloaded.
    page.evaluate("window.__stillHere = true")
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#last-verification .badge-ok")).to_have_text("ok")
    assert page.evaluate("window.__stillHere") is True
    assert VerificationRun.objects.get().ok is True

    # The ledger, newest first; "Older" swaps the results and pushes the URL.
    page.get_by_role("link", name="Ledger", exact=True).click()
    expect(page.locator("h1")).to_have_text("Ledger")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("controlplane.identity.signin.succeeded")  # alice's own sign-in
    expect(rows.nth(1)).to_contain_text("controlplane.test.special")
    expect(page.locator("#results")).not_to_contain_text("controlplane.test.theirs")
    page.evaluate("window.__stillHere = true")
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"/ledger/\?before=\d+$"))
    expect(page.get_by_role("link", name="← Newer")).to_be_visible()
    assert page.evaluate("window.__stillHere") is True

    # Filter by type prefix: the form is submitted by htmx, the URL carries the filter.
    page.fill("input[name=type_prefix]", "controlplane.test.special")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"type_prefix=controlplane\.test\.special"))
    expect(rows).to_have_count(1)
    assert page.evaluate("window.__stillHere") is True

    # Open the event: its fields, its canonical bytes, and a passing verification.
    page.locator("#results tbody tr").first.get_by_role("link", name=str(special.seq)).click()
    expect(page).to_have_url(re.compile(rf"/ledger/{special.seq}/$"))
    expect(page.locator("#event-verification")).to_have_text("verified")
    expect(page.locator("#canonical")).to_have_text(LedgerEvent.objects.get(seq=special.seq).canonical)
    expect(page.locator("#verification .check-passed")).to_have_count(4)

    # A reload of a pushed URL is a whole page (no fragment served to the address bar).
    page.reload()
    expect(page.locator(".topbar")).to_be_visible()
    expect(page.locator("#event-verification")).to_have_text("verified")


def test_back_button_after_paging_restores_the_whole_page(page, operator):
    for i in range(30):
        append("controlplane.test.paged", data={"i": i})
    sign_in(page)
    page.goto("/ledger/")
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"before="))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/ledger/$"))
    expect(page.locator(".topbar")).to_be_visible()
    expect(page.locator("form.filters")).to_be_visible()
    expect(page.locator("#results tbody tr")).to_have_count(25)


def test_anonymous_visitor_signs_in_and_returns_to_the_page_asked_for(page, operator):
    page.goto("/ledger/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/ledger/$"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ledger/$"))


def test_wrong_password_shows_the_reason_code(page, operator):
    sign_in(page, password="not-the-password")
    expect(page.locator(".refusal .code")).to_have_text("AUTH_INVALID_CREDENTIALS")
    expect(page).to_have_url(re.compile(r"/login/$"))


def test_sign_out(page, operator):
    sign_in(page)
    # The navigation badges load by htmx after the page: an answer arriving after the sign-out would send
    # the browser to /login/?next=/ (the page it was loaded on), so let it arrive first.
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
