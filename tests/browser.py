"""Browser fixtures for every app's Playwright tests (registered in tests/conftest.py as a plugin):
Debian's Chromium driven by Playwright, one browser per module, a fresh context per test, and signing in."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

PASSWORD = "correct-horse-battery"  # tests.identity.factories.UserFactory's password
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
