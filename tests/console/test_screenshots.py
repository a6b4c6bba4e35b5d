"""Screenshots of the console pages for the docs (`make screenshots`; skipped unless SCREENSHOTS=1).

Writes docs/screenshots/<page>.png from a live server holding a small, realistic ledger.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controlplane.ledger.services import checkpoint_create
from controlplane.ledger.verify import verification_record
from tests.console.conftest import append, sign_in

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

    assert sorted(p.name for p in OUT.glob("*.png")) >= [
        "dashboard.png",
        "event.png",
        "ledger.png",
        "login.png",
    ]
