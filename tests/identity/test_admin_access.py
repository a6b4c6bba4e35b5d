"""The Django admin is no side door: a principal holding admin.access, a second factor (TOTP), and every
change ledgered through a service (or read-only)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from controlplane.identity.models import Tenant
from controlplane.ledger.models import LedgerEvent
from skills.models import Skill, SkillStatus
from tests.admin_helpers import admin_client_for
from tests.identity.factories import TenantFactory

pytestmark = pytest.mark.django_db

User = get_user_model()


def _code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def _rename_refused(client, tenant: Tenant) -> None:
    before = LedgerEvent.objects.count()
    response = client.post(f"/admin/identity/tenant/{tenant.pk}/change/", {"name": "Hijacked"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    tenant.refresh_from_db()
    assert tenant.name == "Acme" and LedgerEvent.objects.count() == before


def test_anonymous_visitors_are_sent_to_the_console_sign_in(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"principal": False}, "AUTH_NO_PRINCIPAL"),
        ({"capabilities": ("console.view",)}, "CAPABILITY_MISSING"),
        ({"verified": False}, "ADMIN_OTP_REQUIRED"),
    ],
)
def test_no_principal_no_capability_or_no_second_factor_is_refused(client, kwargs, code):
    tenant = TenantFactory(slug="acme", name="Acme")
    admin_client_for(client, **kwargs)
    assert client.get("/admin/").status_code == 302
    _rename_refused(client, tenant)
    page = client.get("/admin/login/")
    assert page.status_code == (401 if code == "ADMIN_OTP_REQUIRED" else 403)
    assert f"<code data-reason-code>{code}</code>" in page.content.decode()


def test_the_second_factor_is_a_totp_code_and_a_wrong_one_is_refused(client, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp delays retries after a failure; not under test here
    admin_client_for(client, verified=False)
    device = TOTPDevice.objects.create(user=User.objects.get(username="root"), name="phone", confirmed=True)
    wrong = client.post("/admin/login/", {"otp_device": device.persistent_id, "otp_token": "000000"})
    assert wrong.status_code == 401 and client.get("/admin/").status_code == 302
    right = client.post(
        "/admin/login/", {"otp_device": device.persistent_id, "otp_token": _code(device), "next": "/admin/"}
    )
    assert right.status_code == 302 and right["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_dev_bypass_lets_a_principal_in_without_a_second_factor(client, settings):
    settings.CONTROLPLANE_ADMIN_OTP_REQUIRED = False
    admin_client_for(client, verified=False)
    assert client.get("/admin/").status_code == 200


def test_a_tenant_edit_in_admin_is_ledgered(client):
    tenant = TenantFactory(slug="acme", name="Acme")
    admin_client_for(client)
    response = client.post(
        f"/admin/identity/tenant/{tenant.pk}/change/", {"name": "Acme Corp", "slug": "evil"}
    )
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.slug, tenant.name) == ("acme", "Acme Corp")  # the slug is read-only
    event = LedgerEvent.objects.get(type="controlplane.identity.tenant.changed")
    assert (event.actor, event.tenant, event.data) == (
        "admins/root",
        "acme",
        {"slug": "acme", "name": "Acme Corp", "previous_name": "Acme"},
    )


def _user_form(user, **overrides) -> dict:
    form = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_a_user_made_superuser_is_ledgered_without_secrets(client):
    admin_client_for(client)
    bob = User.objects.create_user(username="bob", password="s3cret-pass-word")
    response = client.post(
        f"/admin/auth/user/{bob.pk}/change/", _user_form(bob, is_staff="on", is_superuser="on")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    bob.refresh_from_db()
    assert bob.is_superuser and bob.is_staff
    event = LedgerEvent.objects.get(type="controlplane.identity.user.changed", subject="user/bob")
    assert event.actor == "admins/root"
    assert event.data["changed"] == ["is_staff", "is_superuser"]
    assert event.data["values"] == {"is_staff": True, "is_superuser": True}
    assert bob.password not in str(event.data)


def test_a_password_reset_in_admin_is_ledgered_as_changed_only(client):
    admin_client_for(client)
    bob = User.objects.create_user(username="bob", password="s3cret-pass-word")
    new = "An0ther-long-passphrase"
    response = client.post(
        f"/admin/auth/user/{bob.pk}/password/",
        {"password1": new, "password2": new, "usable_password": "true"},
    )
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.check_password(new)
    event = LedgerEvent.objects.get(type="controlplane.identity.user.changed", subject="user/bob")
    assert event.data["secrets_changed"] == ["password"] and event.data["values"] == {}
    assert new not in str(event.data) and bob.password not in str(event.data)


def test_users_and_tenants_cannot_be_deleted_and_groups_are_read_only(client):
    tenant = TenantFactory(slug="acme", name="Acme")
    admin_client_for(client)
    bob = User.objects.create_user(username="bob")
    before = LedgerEvent.objects.count()
    assert client.post(f"/admin/auth/user/{bob.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/identity/tenant/{tenant.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post("/admin/auth/group/add/", {"name": "ops"}).status_code == 403
    assert User.objects.filter(pk=bob.pk).exists() and Tenant.objects.filter(pk=tenant.pk).exists()
    assert LedgerEvent.objects.count() == before


def test_a_skills_status_is_read_only_in_admin(client):
    admin_client_for(client)
    core = Skill.objects.get(name="core")
    before = LedgerEvent.objects.count()
    client.post(f"/admin/skills/skill/{core.pk}/change/", {"status": SkillStatus.DISABLED})
    core.refresh_from_db()
    assert core.status == SkillStatus.INSTALLED and LedgerEvent.objects.count() == before
