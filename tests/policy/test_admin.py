"""Django admin for policy profiles: adding goes through profile_create, content is read-only, the
activate action goes through profile_activate; all of it ledgered."""

from __future__ import annotations

import json

import pytest

from controlplane.ledger.models import LedgerEvent
from controlplane.policy import shipped
from controlplane.policy.models import PolicyProfile
from tests.admin_helpers import admin_client_for
from tests.policy.factories import PolicyProfileFactory, content

pytestmark = pytest.mark.django_db

ADMIN = "/admin/policy/policyprofile/"


@pytest.fixture
def admin_client(client):
    return admin_client_for(client, capabilities=("admin.access", "console.view", "platform.policy.manage"))


def test_an_admin_without_the_platform_capability_cannot_add_or_activate(client):
    """The admin is no side door: admin.access alone does not create or activate installation-wide
    profiles (the API and CLI need platform.policy.manage). Before, the admin handed profile_create a name,
    which the service takes for the installation itself."""
    plain = admin_client_for(client, username="plain")
    draft = PolicyProfileFactory(name="payments", environment="stage")
    events = LedgerEvent.objects.count()
    body = {"name": "payments", "environment": "stage", "content": json.dumps(content())}
    assert plain.get(f"{ADMIN}add/").status_code == 403
    assert plain.post(f"{ADMIN}add/", body).status_code == 403
    plain.post(ADMIN, {"action": "activate", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.status == "draft" and LedgerEvent.objects.count() == events
    assert plain.get(ADMIN).status_code == 200  # reading is still allowed


def test_changelist_and_read_only_detail(admin_client):
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    listing = admin_client.get(ADMIN)
    assert listing.status_code == 200
    assert shipped.STRICT in listing.content.decode() and strict.content_hash[:16] in listing.content.decode()
    detail = admin_client.get(f"{ADMIN}{strict.pk}/change/")
    assert detail.status_code == 200
    page = detail.content.decode()
    assert strict.content_hash in page and "prod-target" in page
    assert 'name="content"' not in page  # no editable content field


def test_adding_a_profile_goes_through_the_service_and_is_ledgered(admin_client):
    response = admin_client.post(
        f"{ADMIN}add/", {"name": "payments", "environment": "stage", "content": json.dumps(content())}
    )
    assert response.status_code == 302
    profile = PolicyProfile.objects.get(name="payments")
    assert (profile.version, profile.status) == (1, "draft")
    event = LedgerEvent.objects.get(type="controlplane.policy.profile.created")
    assert event.actor.endswith("/root") and event.actor == profile.created_by
    assert event.data["content"] == content()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            content(tiers={"high": {"mode": "autonomous"}}),
            "POLICY_PROFILE_INVALID: tiers.high.mode: high steps",
        ),
        (
            content(tiers={"critical": {"mode": "autonomous"}}),
            "POLICY_PROFILE_INVALID: tiers.critical.mode: critical steps",
        ),
        (
            content(
                rules=[
                    {
                        "id": "r",
                        "when": {"bogus": 1},
                        "raise_to": "high",
                        "reason": "POLICY_TIER_RAISED_PROD_TARGET",
                    }
                ]
            ),
            "POLICY_PROFILE_INVALID: rules[0].when",
        ),
    ],
)
def test_an_invalid_profile_cannot_be_added_in_admin(admin_client, value, message):
    events = LedgerEvent.objects.count()
    response = admin_client.post(
        f"{ADMIN}add/", {"name": "payments", "environment": "prod", "content": json.dumps(value)}
    )
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not PolicyProfile.objects.filter(name="payments").exists()
    assert LedgerEvent.objects.count() == events


def test_a_name_stays_in_its_environment_in_admin(admin_client):
    response = admin_client.post(
        f"{ADMIN}add/", {"name": shipped.STRICT, "environment": "dev", "content": json.dumps(content())}
    )
    assert response.status_code == 200
    assert "POLICY_PROFILE_INVALID: control-plane-strict-v1 belongs to prod" in response.content.decode()
    assert PolicyProfile.objects.filter(name=shipped.STRICT).count() == 1


def test_content_cannot_be_changed_or_deleted_in_admin(admin_client):
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    change = admin_client.post(
        f"{ADMIN}{strict.pk}/change/",
        {"name": strict.name, "environment": "prod", "content": json.dumps(content())},
    )
    assert change.status_code == 403
    assert admin_client.post(f"{ADMIN}{strict.pk}/delete/", {"post": "yes"}).status_code == 403
    strict.refresh_from_db()
    assert strict.content == shipped.STRICT_CONTENT


def test_the_activate_action_calls_the_service(admin_client):
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    response = admin_client.post(
        ADMIN, {"action": "activate", "index": "0", "_selected_action": [strict.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "control-plane-strict-v1@v1 is active in prod" in response.content.decode().lower()
    strict.refresh_from_db()
    assert strict.status == "active"
    event = LedgerEvent.objects.get(type="controlplane.policy.profile.activated")
    assert event.actor.endswith("/root") and event.data["reason"] == "activated in admin"


def test_the_activate_action_refuses_two_profiles_of_one_environment(admin_client):
    strict = PolicyProfile.objects.get(name=shipped.STRICT)
    other = PolicyProfileFactory(environment="prod")
    response = admin_client.post(
        ADMIN, {"action": "activate", "index": "0", "_selected_action": [strict.pk, other.pk]}, follow=True
    )
    assert "pick one profile per environment to activate" in response.content.decode()
    assert not PolicyProfile.objects.filter(status="active").exists()
    assert not LedgerEvent.objects.filter(type="controlplane.policy.profile.activated").exists()
