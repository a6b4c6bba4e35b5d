"""Helpers for the console's action pages: a tenant with an agent that submits plans, and its operators."""

from __future__ import annotations

import pytest

from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.identity.models import Principal
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Intent
from tests.identity.factories import PrincipalFactory, TenantFactory

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
DECIDER = ["console.view", "approvals.read", "approvals.decide", "executions.read", "ledger.read"]


def prod_step_draft(goal: str = "restart checkout", *, steps: int = 1) -> dict:
    """A plan whose last step targets production: the dev profile raises it to high (approval, quorum 1).

    Earlier steps are low and run on their own; the last one depends on them.
    """
    keys = [f"s{i}" for i in range(steps)]
    draft_steps = [{"key": k, "action": "noop.echo", "inputs": {"message": k}} for k in keys[:-1]]
    draft_steps.append(
        {
            "key": keys[-1],
            "action": "noop.echo",
            "inputs": {"message": "restart", "target": {"environment": "prod"}},
            "depends_on": keys[:-1],
        }
    )
    return {"goal": goal, "context": {"ticket": "OPS-7"}, "steps": draft_steps}


@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


from tests.runtime.support import core_skill_installed  # noqa: E402  (one way to put the core skill back)


@pytest.fixture
def dev_policy(db):
    """The built-in actions and the shipped dev profile, active (both survive a transactional flush)."""
    core_skill_installed()
    return policy.profile_bootstrap(environment="dev")


@pytest.fixture
def acme(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def agent(acme) -> Principal:
    return PrincipalFactory(tenant=acme, name="deploy-agent", agent=True, capabilities=["intents.submit"])


@pytest.fixture
def decider(acme) -> Principal:
    """acme/dora: a person on call who may see and decide approvals and follow executions."""
    return PrincipalFactory(tenant=acme, name="dora", human=True, user__username="dora", capabilities=DECIDER)


def submit(agent: Principal, draft: dict, key: str, capture=None, traceparent: str | None = None) -> Intent:
    """Submit a draft; with `capture` (django_capture_on_commit_callbacks) ready steps run in-process."""
    if capture is None:
        return services.intent_submit(
            principal=agent, draft=draft, idempotency_key=key, traceparent=traceparent
        )
    with capture(execute=True):
        return services.intent_submit(
            principal=agent, draft=draft, idempotency_key=key, traceparent=traceparent
        )


def pending() -> list[ApprovalRequest]:
    return list(ApprovalRequest.objects.filter(status="pending").order_by("created_at", "id"))
