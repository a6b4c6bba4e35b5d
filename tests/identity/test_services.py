"""Identity services: every change is ledgered; every refusal has a code and writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.identity import services
from controlplane.identity.models import ApiToken, Grant, Principal, hash_token
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db


def _events(type_: str) -> list[LedgerEvent]:
    return list(LedgerEvent.objects.filter(type=type_))


def test_grant_and_revoke_are_ledgered_with_actor_and_capability():
    principal = PrincipalFactory()
    services.grant_add(principal=principal, capability="ledger.read", actor="acme/admin")
    assert principal.has_capability("ledger.read")
    services.grant_revoke(principal=principal, capability="ledger.read", actor="acme/admin")
    assert not principal.has_capability("ledger.read")
    added, revoked = (
        _events("controlplane.identity.grant.added")[-1],
        _events("controlplane.identity.grant.revoked")[-1],
    )
    assert added.data == {"principal": principal.ref, "capability": "ledger.read", "expires_at": None}
    assert revoked.actor == "acme/admin" and revoked.tenant == principal.tenant.slug


def test_unknown_capability_is_refused_and_nothing_written():
    principal = PrincipalFactory()
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught:
        services.grant_add(principal=principal, capability="everything.please")
    assert caught.value.code == "CAPABILITY_UNKNOWN"
    assert LedgerEvent.objects.count() == before and not Grant.objects.filter(principal=principal).exists()


def test_revoking_a_grant_not_held_is_refused_and_nothing_written():
    principal = PrincipalFactory()
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught:
        services.grant_revoke(principal=principal, capability="ledger.read")
    assert caught.value.code == "GRANT_NOT_FOUND"
    assert LedgerEvent.objects.count() == before


def test_expired_grant_confers_nothing():
    principal = PrincipalFactory()
    services.grant_add(
        principal=principal, capability="ledger.read", expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert not principal.has_capability("ledger.read")


def test_inactive_principal_has_no_capabilities():
    principal = PrincipalFactory(capabilities=["ledger.read"])
    principal.is_active = False
    assert not principal.has_capability("ledger.read")


def test_duplicate_principal_is_refused_and_nothing_written():
    tenant = TenantFactory(slug="acme")
    services.principal_create(tenant=tenant, name="bot", kind="agent")
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught:
        services.principal_create(tenant=tenant, name="bot", kind="service")
    assert caught.value.code == "PRINCIPAL_EXISTS"
    assert LedgerEvent.objects.count() == before and Principal.objects.filter(tenant=tenant).count() == 1


def test_token_is_stored_hashed_shown_once_and_revocable():
    principal = PrincipalFactory()
    issued = services.token_issue(principal=principal, name="ci")
    token = ApiToken.objects.get()
    assert issued.secret.startswith(f"cp_{token.prefix}_")
    assert token.token_hash == hash_token(issued.secret) and issued.secret not in token.token_hash
    assert issued.secret not in str(list(LedgerEvent.objects.values_list("canonical", flat=True)))
    assert services.token_authenticate(secret=issued.secret).pk == token.pk
    services.token_revoke(prefix=token.prefix)
    assert services.token_authenticate(secret=issued.secret) is None


def test_expired_token_does_not_authenticate():
    principal = PrincipalFactory()
    issued = services.token_issue(
        principal=principal, name="ci", expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert services.token_authenticate(secret=issued.secret) is None


def test_failed_authentications_are_ledgered_until_the_source_is_throttled(settings):
    settings.CONTROLPLANE_AUTH_FAILURE_LIMIT = 3
    for _ in range(10):
        services.auth_failure_record(source="10.0.0.9", method="password", username="mallory")
    assert len(_events("controlplane.identity.signin.failed")) == 3
    with pytest.raises(ControlPlaneError) as caught:
        services.auth_throttle_check(source="10.0.0.9")
    assert caught.value.code == "AUTH_THROTTLED"
    services.auth_throttle_check(source="10.0.0.10")  # another source is unaffected


def test_the_username_hash_is_keyed_with_the_server_secret(settings):
    first = services.username_hmac("alice")
    assert first == services.username_hmac("alice") and first != services.username_hmac("bob")
    settings.SECRET_KEY = "another-installation-" + "x" * 40
    assert services.username_hmac("alice") != first  # not a plain hash anyone can recompute


@pytest.mark.parametrize("capability", ["platform.killswitch.manage", "admin.access"])
@pytest.mark.parametrize("kind", ["agent", "tool"])
def test_platform_capabilities_are_refused_to_agents_and_tools(kind, capability):
    """`admin.access` is of the platform scope too: the Django admin shows every tenant's objects."""
    principal = PrincipalFactory(kind=kind)
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught:
        services.grant_add(principal=principal, capability=capability, actor="admin")
    assert caught.value.code == "PLATFORM_GRANT_REFUSED"
    assert not Grant.objects.filter(principal=principal).exists()
    assert LedgerEvent.objects.count() == before


def test_platform_capabilities_are_registered_and_granted_to_people():
    from controlplane.identity.capabilities import CAPABILITIES
    from controlplane.identity.scope import is_platform_principal

    assert {"platform.killswitch.manage", "platform.policy.manage", "platform.runners.manage"} <= set(
        CAPABILITIES
    )
    principal = PrincipalFactory(human=True)
    assert not is_platform_principal(principal)
    services.grant_add(principal=principal, capability="platform.runners.manage", actor="admin")
    assert is_platform_principal(Principal.objects.get(pk=principal.pk))
