"""policy.activate: activating a profile is approved by people and bound to its content hash."""

from __future__ import annotations

import pytest

from approvals import services
from approvals.subjects import policy_activation_request
from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy import services as policy
from controlplane.policy.selectors import active_profile
from controlplane.policy.shipped import DEV_CONTENT
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db


def test_an_approved_activation_activates_exactly_that_profile():
    tenant = TenantFactory(slug="acme")
    author = PrincipalFactory(
        tenant=tenant, name="author", human=True, capabilities=["approvals.decide", "platform.policy.manage"]
    )
    approver = PrincipalFactory(tenant=tenant, name="approver", human=True, capabilities=["approvals.decide"])
    profile = policy.profile_create(
        name="dev-next", environment="dev", content=DEV_CONTENT, actor=author
    ).profile
    request = policy_activation_request(profile=profile, requested_by=author, reason="roll out")
    assert active_profile(environment="dev") is None
    with pytest.raises(ControlPlaneError) as caught:
        services.approval_decide(
            approval=request,
            actor=author,
            decision="approve",
            reason="mine",
            content_hash=profile.content_hash,
        )
    assert caught.value.code == "APPROVAL_SELF_APPROVAL"
    services.approval_decide(
        approval=request,
        actor=approver,
        decision="approve",
        reason="reviewed",
        content_hash=profile.content_hash,
    )
    active = active_profile(environment="dev")
    assert (active.pk, active.content_hash) == (profile.pk, profile.content_hash)
    request.refresh_from_db()
    assert request.consumed_at is not None
