"""A test client signed in to the Django admin the way the admin demands: a staff user linked to a
principal holding `admin.access`, whose session has verified a TOTP device."""

from __future__ import annotations

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from controlplane.identity.models import Tenant
from tests.identity.factories import PrincipalFactory, UserFactory

ADMIN_TENANT = "admins"  # the administrators' principals live here: events name them `admins/<username>`


def admin_client_for(
    client: Client,
    *,
    username: str = "root",
    capabilities: tuple[str, ...] = ("admin.access", "console.view"),
    principal: bool = True,
    verified: bool = True,
) -> Client:
    user = UserFactory(username=username, is_staff=True, is_superuser=True)
    if principal:
        tenant, _ = Tenant.objects.get_or_create(slug=ADMIN_TENANT, defaults={"name": "Administrators"})
        PrincipalFactory(human=True, user=user, name=username, tenant=tenant, capabilities=list(capabilities))
    client.force_login(user)
    if verified:
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client
