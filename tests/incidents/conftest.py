"""Fixtures for the incidents tests: a tenant with an ingesting service, a person on call, rules."""

from __future__ import annotations

import pytest

from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.incidents.factories import (
    make_rule,
    open_incident,
)


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def sender(tenant):
    """The monitoring system's service principal: it may only ingest signals."""
    return PrincipalFactory(tenant=tenant, name="alertmanager", capabilities=["signals.ingest"])


@pytest.fixture
def sender_token(sender) -> str:
    return token_for(sender)


@pytest.fixture
def oncall(tenant):
    """A person on call: reads and manages incidents, silences, and submits remediations."""
    return PrincipalFactory(
        tenant=tenant,
        name="alice",
        human=True,
        capabilities=["incidents.read", "incidents.manage", "silences.manage", "intents.submit"],
    )


@pytest.fixture
def oncall_token(oncall) -> str:
    return token_for(oncall)


@pytest.fixture
def admin(tenant):
    return PrincipalFactory(tenant=tenant, name="root", human=True, capabilities=["detection.manage"])


@pytest.fixture
def rule(tenant):
    return make_rule(tenant)


@pytest.fixture
def incident(tenant, rule):
    return open_incident(tenant)
