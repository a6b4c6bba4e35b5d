"""Console fixtures: an operator and their tenant's events; a headless Chromium for the browser tests."""

from __future__ import annotations

import pytest

from controlplane.identity.models import Principal
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from tests.browser import PASSWORD, sign_in  # noqa: F401  (used by this app's tests)
from tests.console.flow import acme, agent, decider, dev_policy, eager_tasks  # noqa: F401  (fixtures)
from tests.identity.factories import PrincipalFactory, TenantFactory

OPERATOR_CAPABILITIES = ["console.view", "ledger.read", "ledger.verify"]


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
