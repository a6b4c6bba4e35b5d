"""The skills pages in a real browser: a pending install's review (the diff), approved in the approval
queue, then the registry shows it installed with its trust status; the publisher trust store page."""

from __future__ import annotations

import pytest

from skills import services
from skills.models import Skill
from tests.browser import sign_in
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.skills.support import SigningPublisher

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

expect = pytest.importorskip("playwright.sync_api").expect


def test_an_install_is_reviewed_and_approved_in_the_browser(page):
    from controlplane.policy import services as policy

    policy.profile_bootstrap(environment="dev")
    tenant = TenantFactory(slug="platform")
    operator = PrincipalFactory(
        tenant=tenant, name="pat", human=True, capabilities=["platform.skills.manage"]
    )
    PrincipalFactory(
        tenant=tenant,
        name="dora",
        human=True,
        user__username="dora",
        capabilities=["console.view", "skills.read", "approvals.read", "approvals.decide"],
    )
    publisher = SigningPublisher()
    publisher.trust()
    request = services.skill_install_request(envelope=publisher.sign(), actor=operator, reason="ops restarts")
    sign_in(page, "dora")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.goto("/skills/")
    expect(page.locator(f'#pending-installs tr[data-install="{request.pk}"]')).to_contain_text(
        "acme-ops@1.0.0"
    )
    page.get_by_role("link", name="install review").click()
    expect(page.locator("h1")).to_contain_text("acme-ops (new) → 1.0.0")
    expect(page.locator('#review-changes tr[data-action="acme.restart"]')).to_contain_text("added")
    page.get_by_role("link", name="decide in the approval queue").click()
    card = page.locator("#queue article.req").first
    expect(card.get_by_role("link", name="install review")).to_be_visible()
    card.locator("input[name=reason]").fill("reviewed the diff")
    card.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#queue article.req")).to_have_count(0)
    assert Skill.objects.get(name="acme-ops").status == "installed"
    page.goto("/skills/")
    expect(page.locator('tr[data-skill="acme-ops"]')).to_contain_text("signed by 1 key")
    page.get_by_role("link", name="publisher trust store").click()
    expect(page.locator(f'tr[data-key="{publisher.key_ids[0]}"]')).to_contain_text("valid")
