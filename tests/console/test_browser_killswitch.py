"""The kill switch in a real browser: engage it, see new work held (not failed) on the kill switch and
executions pages, release it choosing to decide one by one, then resume one held execution and cancel the
other, each with a reason; the executions page then says what became of them."""

from __future__ import annotations

import pytest

from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Execution
from tests.console.conftest import sign_in
from tests.console.flow import submit
from tests.identity.factories import PrincipalFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dev_policy", "eager_tasks"),
]

expect = pytest.importorskip("playwright.sync_api").expect

DRAFT = {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "hi"}}]}


def test_the_kill_switch_holds_work_and_the_operator_resumes_one_and_cancels_the_other(page, acme, agent):
    PrincipalFactory(
        tenant=acme,
        name="sam",
        human=True,
        user__username="sam",
        capabilities=["console.view", "killswitch.manage", "executions.read"],
    )
    sign_in(page, "sam")
    page.goto("/killswitch/")
    expect(page.locator("#held-none")).to_be_visible()

    # Engage acme's switch from the page.
    engage = page.locator("form.engage-form")
    engage.locator("select[name=scope]").select_option("tenant")
    engage.locator("input[name=target]").fill("acme")
    engage.locator("input[name=reason]").fill("bad deploy, stop everything")
    engage.locator("button[type=submit]").click()
    expect(page.locator("#killswitch-banner")).to_contain_text("bad deploy, stop everything")

    # The agent keeps submitting: its work is held, not failed.
    keep = Execution.objects.get(intent=submit(agent, {**DRAFT, "goal": "keep this one"}, "k1"))
    drop = Execution.objects.get(intent=submit(agent, {**DRAFT, "goal": "drop this one"}, "k2"))
    assert {keep.status, drop.status} == {"running"}

    page.goto("/executions/")
    row = page.locator(f'tr[data-execution="{keep.pk}"]')
    expect(row).to_contain_text("held by the kill switch")

    page.goto("/killswitch/")
    expect(page.locator("#held-count")).to_have_text("2")
    expect(page.locator('tr[data-switch="tenant:acme"] .holding')).to_have_text("2 executions")
    expect(page.locator(f'tr[data-held="{keep.pk}"] button[value=resume]')).to_be_disabled()

    # Release, deciding one by one: nothing runs yet.
    release = page.locator('tr[data-switch="tenant:acme"] form.release-form')
    release.locator("input[name=held][value=decide]").check()
    release.locator("input[name=reason]").fill("rolled back")
    release.locator("button[type=submit]").click()
    expect(page.locator("#changed")).to_contain_text("2 step(s) still held")
    keep.refresh_from_db()
    assert keep.status == "running"

    held_keep = page.locator(f'tr[data-held="{keep.pk}"]')
    held_keep.locator("input[name=reason]").fill("still needed")
    held_keep.locator("button[value=resume]").click()
    expect(page.locator("#changed")).to_contain_text(f"Execution {keep.pk[:12]} resumed.")

    held_drop = page.locator(f'tr[data-held="{drop.pk}"]')
    held_drop.locator("input[name=reason]").fill("superseded")
    held_drop.locator("button[value=cancel]").click()
    expect(page.locator("#held-none")).to_be_visible()

    keep.refresh_from_db()
    drop.refresh_from_db()
    assert (keep.status, drop.status) == ("completed", "cancelled")
    decided = LedgerEvent.objects.filter(
        type__in=["controlplane.execution.step.resumed", "controlplane.execution.cancelled"]
    ).order_by("seq")
    assert [(e.type, e.actor, e.data["reason"]) for e in decided] == [
        ("controlplane.execution.step.resumed", "acme/sam", "still needed"),
        ("controlplane.execution.cancelled", "acme/sam", "superseded"),
    ]
    page.goto("/executions/")
    expect(page.locator(f'tr[data-execution="{drop.pk}"]')).to_contain_text("cancelled")
