"""Through the runtime: a step of a disabled skill is refused SKILL_NOT_ACTIVE at compilation, the refusal
is recorded on plan.rejected within its contract, and replay re-takes it with no difference."""

from __future__ import annotations

import pytest

from controlplane.kernel.contracts import REGISTRY
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution
from controlplane.runtime.replay import replay_verify
from skills import services as skills
from tests.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db

DRAFT = {"goal": "g", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "hi"}}]}


def test_a_disabled_skill_refuses_compilation_and_replay_agrees():
    policy.profile_bootstrap(environment="dev")
    agent = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="bot", agent=True)
    skills.skill_disable(name="core", actor="test", reason="drill")
    intent = services.intent_submit(principal=agent, draft=DRAFT, idempotency_key="k")
    assert intent.status == "rejected" and intent.rejection["code"] == "SKILL_NOT_ACTIVE"
    assert not Execution.objects.exists()
    event = LedgerEvent.objects.get(type="controlplane.plan.rejected")
    assert event.reason_codes == ["SKILL_NOT_ACTIVE"]
    assert event.data["contracts"] == [
        {"action": "noop.echo", "version": None, "resolved": None, "refused": "SKILL_NOT_ACTIVE"}
    ]
    assert REGISTRY.get("plan.rejected").errors(event.data) == []
    assert replay_verify().differences == []
