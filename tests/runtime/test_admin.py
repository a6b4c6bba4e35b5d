"""Django admin for runners and their grants: saving goes through the runner services (validated, ledgered),
no secret in sight, and only for an admin holding platform.runners.manage."""

from __future__ import annotations

import pytest

from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Runner, RunnerGrant
from controlplane.runtime.runners import runner_grant, runner_register
from tests.admin_helpers import admin_client_for
from tests.identity.factories import TenantFactory

pytestmark = pytest.mark.django_db

ADMIN = "/admin/runtime/runner/"
GRANTS = "/admin/runtime/runnergrant/"
PLATFORM = ("admin.access", "console.view", "platform.runners.manage")


@pytest.fixture
def admin_client(client):
    return admin_client_for(client, capabilities=PLATFORM)


@pytest.fixture
def plain_admin(client):
    """An administrator without the platform capability for runners."""
    return admin_client_for(client, username="plain")


def test_adding_a_runner_goes_through_the_service_and_is_ledgered(admin_client, settings):
    settings.CONTROLPLANE_RUNNER_SECRET = ""
    response = admin_client.post(
        f"{ADMIN}add/",
        {"name": "ops", "url": "http://127.0.0.1:8765/steps", "secret_env": "", "timeout_seconds": 5},
    )
    assert response.status_code == 302
    runner = Runner.objects.get(name="ops")
    assert (runner.url, runner.timeout_seconds, runner.enabled) == ("http://127.0.0.1:8765/steps", 5, True)
    event = LedgerEvent.objects.get(type="controlplane.runner.registered")
    assert event.actor.endswith("/root") and event.data["name"] == "ops"
    listing = admin_client.get(ADMIN).content.decode()
    assert "MISSING" in listing  # the secret variable is not set in this process


def test_an_invalid_runner_shows_the_reason_code_and_writes_nothing(admin_client):
    response = admin_client.post(
        f"{ADMIN}add/",
        {"name": "ops", "url": "http://127.0.0.1/", "secret_env": "SECRET_KEY", "timeout_seconds": ""},
    )
    assert response.status_code == 200 and "RUNNER_INVALID" in response.content.decode()
    assert not Runner.objects.exists() and not LedgerEvent.objects.filter(
        type__startswith="controlplane.runner"
    )


def test_disable_action_and_no_delete(admin_client):
    runner = runner_register(name="ops", url="http://127.0.0.1:9/", actor="test")
    response = admin_client.post(ADMIN, {"action": "disable", "_selected_action": [runner.pk]})
    assert response.status_code == 302
    runner.refresh_from_db()
    assert runner.enabled is False
    assert (
        LedgerEvent.objects.get(type="controlplane.runner.disabled").data["reason"] == "disabled in the admin"
    )
    assert admin_client.get(f"{ADMIN}{runner.pk}/delete/").status_code == 403


def test_a_runner_registered_in_the_admin_can_belong_to_a_tenant(admin_client, settings):
    acme = TenantFactory(slug="acme")
    response = admin_client.post(
        f"{ADMIN}add/",
        {"name": "acme-ops", "tenant": acme.pk, "url": "http://127.0.0.1:8765/steps", "timeout_seconds": 5},
    )
    assert response.status_code == 302
    runner = Runner.objects.get(name="acme-ops")
    assert runner.tenant == acme
    event = LedgerEvent.objects.get(type="controlplane.runner.registered")
    assert (event.tenant, event.data["tenant"]) == ("acme", "acme")


def test_grants_of_a_shared_runner_are_made_and_taken_back_through_the_services(admin_client):
    acme = TenantFactory(slug="acme")
    runner = runner_register(name="ops", url="http://127.0.0.1:9/", actor="test")
    assert admin_client.post(f"{GRANTS}add/", {"runner": runner.pk, "tenant": acme.pk}).status_code == 302
    grant = RunnerGrant.objects.get(runner=runner, tenant=acme)
    granted = LedgerEvent.objects.get(type="controlplane.runner.granted")
    assert granted.actor.endswith("/root") and granted.data["tenant"] == "acme"
    response = admin_client.post(f"{GRANTS}{grant.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not RunnerGrant.objects.exists()
    revoked = LedgerEvent.objects.get(type="controlplane.runner.grant_revoked")
    assert revoked.data["reason"] == "revoked in the Django admin"


def test_a_tenants_own_runner_cannot_be_granted_and_nothing_is_written(admin_client):
    acme, other = TenantFactory(slug="acme"), TenantFactory(slug="other")
    runner = runner_register(name="acme-ops", url="http://127.0.0.1:9/", actor="test", tenant=acme)
    events = LedgerEvent.objects.count()
    response = admin_client.post(f"{GRANTS}add/", {"runner": runner.pk, "tenant": other.pk})
    assert response.status_code == 200 and "RUNNER_INVALID" in response.content.decode()
    assert not RunnerGrant.objects.exists() and LedgerEvent.objects.count() == events


def test_an_admin_without_the_platform_capability_cannot_register_grant_or_disable(plain_admin):
    """The admin is no side door: admin.access alone does not register, change, grant or disable runners
    (the API and CLI need platform.runners.manage too). Before, the admin handed the services a name, which
    they take for the installation itself."""
    acme = TenantFactory(slug="acme")
    runner = runner_register(name="ops", url="http://127.0.0.1:9/", actor="test")
    events = LedgerEvent.objects.count()
    new = {"name": "rogue", "url": "http://127.0.0.1:8765/steps", "timeout_seconds": 5}
    assert plain_admin.post(f"{ADMIN}add/", new).status_code == 403
    assert plain_admin.post(f"{ADMIN}{runner.pk}/change/", {**new, "name": "ops"}).status_code == 403
    assert plain_admin.post(f"{GRANTS}add/", {"runner": runner.pk, "tenant": acme.pk}).status_code == 403
    plain_admin.post(ADMIN, {"action": "disable", "_selected_action": [runner.pk]})
    runner.refresh_from_db()
    assert runner.enabled and not Runner.objects.filter(name="rogue").exists()
    assert not RunnerGrant.objects.exists() and LedgerEvent.objects.count() == events


def test_an_admin_without_the_platform_capability_cannot_revoke_a_grant(plain_admin):
    acme = TenantFactory(slug="acme")
    runner_register(name="ops", url="http://127.0.0.1:9/", actor="test")
    grant = runner_grant(name="ops", tenant=acme, actor="test")
    events = LedgerEvent.objects.count()
    assert plain_admin.post(f"{GRANTS}{grant.pk}/delete/", {"post": "yes"}).status_code == 403
    assert RunnerGrant.objects.filter(pk=grant.pk).exists() and LedgerEvent.objects.count() == events
