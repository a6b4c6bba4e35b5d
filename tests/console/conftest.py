"""Console fixtures: an operator and their tenant's events; a headless Chromium for the browser tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from controlplane.identity.models import Principal
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from tests.console.flow import acme, agent, decider, dev_policy, eager_tasks  # noqa: F401  (fixtures)
from tests.factories import PrincipalFactory, TenantFactory

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's password
OPERATOR_CAPABILITIES = ["console.view", "ledger.read", "ledger.verify"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def operator(db) -> Principal:
    """acme/alice: a person who may use the console, read the ledger and run verification."""
    return PrincipalFactory(
        human=True,
        tenant=TenantFactory(slug="acme"),
        name="alice",
        user__username="alice",
        capabilities=OPERATOR_CAPABILITIES,
    )


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator.user)
    return client


def append(type: str, *, tenant: str = "acme", subject: str = "thing/1", **kwargs) -> LedgerEvent:
    return ledger_append(
        type=type, subject=subject, data=kwargs.pop("data", {"n": 1}), tenant=tenant, **kwargs
    )


# --- Browser ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Chromium for one test module; the rest of the suite runs without Playwright's event loop."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    with pytest.MonkeyPatch.context() as patch:
        # Playwright's sync API runs an event loop in the test thread, and Django refuses ORM calls from
        # a thread with a running loop unless told it is deliberate: here the ORM work is the test's own.
        # Set only while the browser is up, so it never leaks into other tests or their subprocesses.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with playwright_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:
    """A fresh browser context per test, so no cookie or htmx history leaks between tests."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page, username: str = "alice", password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
