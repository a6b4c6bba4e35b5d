"""Django admin for runners: saving goes through runner_register (validated, ledgered), no secret in sight."""

from __future__ import annotations

import pytest

from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Runner
from controlplane.runtime.runners import runner_register
from tests.admin_helpers import admin_client_for

pytestmark = pytest.mark.django_db

ADMIN = "/admin/runtime/runner/"


@pytest.fixture
def admin_client(client):
    return admin_client_for(client)


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
