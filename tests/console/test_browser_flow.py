"""The governed flow end to end, in a real browser, on a real worker, against the reference runner.

An agent submits an intent through the API; the step that targets production waits in the console's
approval queue, which shows it without a reload (it polls itself); an operator approves it in Chromium;
a real `celery -A controlplane worker` process runs the step through the `http.webhook` executor against
the reference runner (a real HTTP server, signature checked, effect once per execution key); the trace
explorer shows the outcome and every event of the chain verified.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Execution
from tests.console.conftest import sign_in
from tests.console.flow import DECIDER, TRACE, TRACEPARENT
from tests.identity.factories import PrincipalFactory, token_for
from tests.runtime.support import Worker, local_runner, wait_for, worker_env

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dev_policy"),
]

expect = pytest.importorskip("playwright.sync_api").expect

DRAFT = {
    "goal": "restart checkout",
    "context": {"ticket": "OPS-7"},
    "steps": [
        {"key": "announce", "action": "noop.echo", "inputs": {"message": "restarting checkout in 5 min"}},
        {
            "key": "restart",
            "action": "http.webhook",
            "inputs": {
                "runner": "ops",
                "operation": "append",
                "payload": {"file": "restarts.log", "line": "restart checkout"},
                "target": {"environment": "prod"},  # the dev profile raises this to high: a person decides
            },
            "depends_on": ["announce"],
        },
    ],
}


def api_submit(base_url: str, token: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 (the live test server's URL)
        f"{base_url}/api/v1/intents/",
        data=json.dumps(DRAFT).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": "restart-checkout-1",
            "traceparent": TRACEPARENT,
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the live test server)
        assert response.status == 201
        return json.loads(response.read())


def test_an_intent_from_the_api_is_approved_in_the_browser_runs_on_a_worker_and_is_traced(
    page, live_server, acme, agent, tmp_path
):
    PrincipalFactory(tenant=acme, name="dora", human=True, user__username="dora", capabilities=DECIDER)
    token = token_for(agent)
    celery_app.control.purge()  # nothing left on this run's queue by earlier tests
    with local_runner(tmp_path) as runner:
        worker = Worker(tmp_path, env=worker_env(runner_secret=runner.secret)).start()
        try:
            # The operator watches the empty queue.
            sign_in(page, "dora")
            expect(page.locator("h1")).to_have_text("Dashboard")
            page.goto("/approvals/")
            expect(page.locator("#queue")).to_contain_text("Nothing is waiting for a decision.")
            page.evaluate("window.__stillHere = true")

            # An agent submits the intent through the API; the first step runs alone on the worker, the
            # second waits for a person and appears in the queue by itself (no reload).
            submitted = api_submit(live_server.url, token)
            assert submitted["trace_id"] == TRACE
            request = page.locator("#queue article.req")
            expect(request).to_have_count(1, timeout=20_000)
            assert page.evaluate("window.__stillHere") is True
            expect(request).to_contain_text("http.webhook@1.0.0")
            expect(request).to_contain_text("POLICY_TIER_RAISED_PROD_TARGET")
            expect(request.locator(".siblings li").first).to_contain_text("completed", timeout=20_000)
            assert runner.lines("restarts.log") == []  # nothing happened before the approval

            # Approve it in the browser.
            request.locator("input[name=reason]").fill("change window open")
            request.get_by_role("button", name="Approve", exact=True).click()
            expect(page.locator("#decided")).to_contain_text("approved")
            expect(page.locator("#queue article.req")).to_have_count(0)

            # The worker runs the step against the runner: the effect happens, once.
            execution = Execution.objects.get(pk=submitted["execution"])
            wait_for(
                lambda: Execution.objects.get(pk=execution.pk).status != "running",
                timeout=60,
                what="the execution to finish on the worker",
            )
            assert Execution.objects.get(pk=execution.pk).status == "completed", worker.output()
            assert runner.lines("restarts.log") == ["restart checkout"]
            ran = r"Task controlplane\.runtime\.tasks\.run_step\[[^\]]+\] succeeded"
            assert len(re.findall(ran, worker.output())) == 2  # both steps ran in the worker process
        finally:
            worker.stop()

    # The trace explorer, reached from the executions list: the outcome and the verified chain.
    page.goto("/executions/")
    page.get_by_role("link", name=TRACE).click()
    expect(page).to_have_url(re.compile(rf"/traces/{TRACE}/$"))
    expect(page.locator("#trace-outcome")).to_have_text("completed")
    expect(page.locator("#trace-verification")).to_have_text("chain verified")
    seqs = set(LedgerEvent.objects.filter(trace_id=TRACE).values_list("seq", flat=True)) | set(
        LedgerEvent.objects.filter(subject__startswith="approval/").values_list("seq", flat=True)
    )
    nodes = page.locator("li.tnode[data-seq]")
    assert {int(s) for s in nodes.evaluate_all("els => els.map(e => e.dataset.seq)")} == seqs
    expect(page.locator(".tnode-verified.badge-ok")).to_have_count(nodes.count())
    decision = page.locator("li.tnode-decision")
    expect(decision).to_contain_text("decision by acme/dora")
    step_outcome = page.locator("li.tnode-step[data-status=completed] li.tnode-outcome").last
    expect(step_outcome).to_contain_text("completed")

    # Open the step's outcome: its ledger event (the runner's reply) and its verification, in place.
    step_outcome.locator("summary").first.click()
    event = step_outcome.locator(".tevent")
    expect(event.locator(".tevent-status")).to_have_text("verified")
    expect(event.locator(".check-passed")).to_have_count(4)
    expect(event).to_contain_text("controlplane.execution.step.completed")
    expect(event).to_contain_text(execution.step_runs.get(step__key="restart").step.execution_key)
