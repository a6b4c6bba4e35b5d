"""Screenshots of the console pages for the docs (`make screenshots`; skipped unless SCREENSHOTS=1).

Writes docs/screenshots/<page>.png from a live server holding a small, realistic ledger.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controlplane.celery import app as celery_app
from controlplane.identity.services import grant_add
from controlplane.ledger.checkpoints import checkpoint_create
from controlplane.ledger.verify import verification_record
from controlplane.policy import services as policy
from controlplane.runtime import services as runtime
from tests.console.conftest import append, sign_in
from tests.console.flow import core_skill_installed
from tests.identity.factories import PrincipalFactory
from tests.incidents.screenshots import shoot_incidents

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.environ.get("SCREENSHOTS") != "1", reason="set SCREENSHOTS=1 to write screenshots"),
]

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _demo_ledger() -> int:
    """A few events of the kinds an operator sees; returns the seq of the one the detail shot shows."""
    traceparent = f"00-{TRACE}-00f067aa0ba902b7-01"
    append(
        "controlplane.intent.submitted",
        subject="intent/7c1e52d0",
        data={"intent": "restart-service", "service": "checkout", "requested_by": "acme/ops-agent"},
        actor="acme/ops-agent",
        traceparent=traceparent,
    )
    append(
        "controlplane.plan.compiled",
        subject="plan/9b4f0e6a",
        data={"intent": "7c1e52d0", "steps": 3, "skill": "k8s.rollout-restart@1.4.0"},
        traceparent=traceparent,
    )
    append(
        "controlplane.policy.verdict.recorded",
        subject="plan/9b4f0e6a",
        data={"step": 2, "risk_tier": "high", "verdict": "require_approval", "quorum": 1},
        traceparent=traceparent,
    )
    detail = append(
        "controlplane.approval.request.decided",
        subject="approval/51d2c9aa",
        data={
            "decision": "approve",
            "approver": "acme/alice",
            "content_hash": "sha256:1f0c6a3be2d84c1d9a4f7b35e0a7c7d2b8a1e6f4c3d2b1a09f8e7d6c5b4a3928",
            "step": 2,
        },
        actor="acme/alice",
        traceparent=traceparent,
    ).seq
    append(
        "controlplane.execution.step.completed",
        subject="execution/3f2a9c41",
        data={"step": 2, "outcome": "succeeded", "duration_ms": 8412},
        traceparent=traceparent,
    )
    append(
        "controlplane.incident.opened",
        subject="incident/e0c4b7f2",
        data={"service": "checkout", "severity": "critical", "confidence_bp": 8700},
        fidelity="degraded",
    )
    checkpoint_create(actor="system")
    verification_record()
    return detail


def test_screenshots(page, operator):
    OUT.mkdir(parents=True, exist_ok=True)
    detail_seq = _demo_ledger()

    page.goto("/login/")
    page.screenshot(path=OUT / "login.png", full_page=True)

    sign_in(page, password="a-mistyped-password")  # ledgered with AUTH_INVALID_CREDENTIALS
    page.wait_for_selector(".refusal")
    sign_in(page)
    page.wait_for_selector("#integrity")
    page.screenshot(path=OUT / "dashboard.png", full_page=True)

    page.goto("/ledger/")
    page.wait_for_selector("#results tbody tr")
    page.screenshot(path=OUT / "ledger.png", full_page=True)

    page.goto(f"/ledger/{detail_seq}/")
    page.wait_for_selector("#event-verification")
    page.screenshot(path=OUT / "event.png", full_page=True)

    trace_id = _demo_actions(operator)
    page.goto("/approvals/")
    page.wait_for_selector("#queue .req")
    page.screenshot(path=OUT / "approvals.png", full_page=True)

    page.goto("/executions/")
    page.wait_for_selector("#results tbody tr")
    page.screenshot(path=OUT / "executions.png", full_page=True)

    page.goto(f"/traces/{trace_id}/")
    page.wait_for_selector("#trace-verification")
    page.locator("li.tnode-outcome summary").last.click()
    page.wait_for_selector(".tevent-status")
    page.screenshot(path=OUT / "trace.png", full_page=True)

    runtime.killswitch_set(
        scope="action", target="http.webhook", engaged=True, reason="runner fleet upgrade", actor=operator.ref
    )
    page.goto("/killswitch/")
    page.wait_for_selector("#killswitch-banner")
    page.screenshot(path=OUT / "killswitch.png", full_page=True)

    incident_pages = shoot_incidents(page, operator, OUT)  # board, detail, signals, silences
    _shoot_this_waves_pages(page, operator)
    assert {p.name for p in OUT.glob("*.png")} >= set(incident_pages) | {
        "governance.png",
        "learning.png",
        "plugins.png",
        "plugin-reviews.png",
        "skills.png",
        "channels-links.png",
        "approvals.png",
        "dashboard.png",
        "event.png",
        "executions.png",
        "killswitch.png",
        "ledger.png",
        "login.png",
        "trace.png",
    }


def _demo_actions(operator) -> str:
    """A few executions: one that ran on its own, two waiting for a person; returns the first one's trace."""
    for capability in ("approvals.read", "approvals.decide", "executions.read", "killswitch.manage"):
        grant_add(principal=operator, capability=capability, actor="test")
    core_skill_installed()
    policy.profile_bootstrap(environment="dev")
    agent = PrincipalFactory(tenant=operator.tenant, name="deploy-agent", agent=True)
    celery_app.conf.task_always_eager = True
    try:
        done = runtime.intent_submit(
            principal=agent,
            draft={
                "goal": "warm the checkout cache",
                "context": {"ticket": "OPS-412"},
                "steps": [
                    {"key": "drain", "action": "noop.echo", "inputs": {"message": "drain node 3"}},
                    {
                        "key": "warm",
                        "action": "noop.echo",
                        "inputs": {"message": "warm"},
                        "depends_on": ["drain"],
                    },
                    {
                        "key": "undrain",
                        "action": "noop.echo",
                        "inputs": {"message": "undrain"},
                        "depends_on": ["warm"],
                    },
                ],
            },
            idempotency_key="shot-1",
        )
        for n, (goal, service) in enumerate(
            [("restart checkout", "checkout"), ("rotate payments keys", "payments")]
        ):
            runtime.intent_submit(
                principal=agent,
                draft={
                    "goal": goal,
                    "context": {"ticket": f"OPS-41{n + 3}"},
                    "steps": [
                        {"key": "announce", "action": "noop.echo", "inputs": {"message": f"{goal} in 5 min"}},
                        {
                            "key": "act",
                            "action": "noop.echo",
                            "inputs": {
                                "message": goal,
                                "service": service,
                                "target": {"environment": "prod"},
                            },
                            "depends_on": ["announce"],
                        },
                        {
                            "key": "verify",
                            "action": "noop.echo",
                            "inputs": {"message": "check"},
                            "depends_on": ["act"],
                        },
                    ],
                },
                idempotency_key=f"shot-{n + 2}",
            )
    finally:
        celery_app.conf.task_always_eager = False
    return done.trace_id


def _shoot_this_waves_pages(page, operator) -> None:
    """The governance, plugins, skills, learning and channel pages, each with data of its own."""
    from controlplane.kernel.shell import cli_actor
    from learning.services import learning_calibrate
    from plugins.demo import plugins_demo
    from skills.demo import skills_demo

    for capability in (
        "governance.read",
        "plugins.read",
        "plugins.review",
        "skills.read",
        "learning.read",
        "learning.review",
        "channels.link",
    ):
        grant_add(principal=operator, capability=capability, actor="test")
    plugins_demo(tenant=operator.tenant, actor=cli_actor())
    skills_demo(actor=cli_actor())
    learning_calibrate(tenant=operator.tenant, actor="system")
    for path, name, selector in (
        ("/governance/", "governance.png", "h1"),
        ("/plugins/", "plugins.png", "#health"),
        ("/plugins/reviews/", "plugin-reviews.png", "h1"),
        ("/skills/", "skills.png", "#registry"),
        ("/learning/", "learning.png", "#report"),
        ("/channels/links/", "channels-links.png", "h1"),
    ):
        page.goto(path)
        page.wait_for_selector(selector)
        page.screenshot(path=OUT / name, full_page=True)
