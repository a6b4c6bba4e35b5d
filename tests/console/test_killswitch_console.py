"""The console's kill-switch control and the dashboard's loud banner."""

from __future__ import annotations

import pytest
from django.test import Client

from controlplane.ledger.models import LedgerEvent
from controlplane.runtime import selectors, services
from controlplane.runtime.models import Execution, KillSwitch
from tests.console.flow import submit
from tests.identity.factories import PrincipalFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dev_policy", "eager_tasks")]

HTMX = {"HX-Request": "true"}


@pytest.fixture
def sre(acme):
    return PrincipalFactory(
        tenant=acme,
        name="sam",
        human=True,
        capabilities=["console.view", "killswitch.manage", "platform.killswitch.manage"],
    )


@pytest.fixture
def sre_client(client, sre):
    client.force_login(sre.user)
    return client


def change(client, **fields):
    return client.post("/killswitch/change/", fields, headers=HTMX)


def switch_events() -> list[LedgerEvent]:
    return list(LedgerEvent.objects.filter(type__startswith="controlplane.killswitch").order_by("seq"))


def test_killswitch_page_full_and_fragment(sre_client):
    full = sre_client.get("/killswitch/")
    fragment = sre_client.get("/killswitch/", headers=HTMX)
    assert b"<html" in full.content and b"<html" not in fragment.content
    assert b'id="killswitch-state"' in fragment.content and b"Nothing new is held" in fragment.content
    assert b'id="held-none"' in fragment.content


def test_engage_global_stops_dispatch_and_release_lets_it_run_again(
    sre_client, agent, django_capture_on_commit_callbacks
):
    response = change(sre_client, engaged="true", scope="global", target="", reason="database failover")

    assert response.status_code == 200 and b"<html" not in response.content
    assert b"Kill switch global:* engaged." in response.content
    assert b"KILL SWITCH ENGAGED" in response.content and b"database failover" in response.content
    switch = KillSwitch.objects.get()
    assert (switch.scope, switch.engaged, switch.changed_by) == ("global", True, "acme/sam")
    [engaged] = switch_events()
    assert (engaged.type, engaged.actor, engaged.data["reason"]) == (
        "controlplane.killswitch.engaged",
        "acme/sam",
        "database failover",
    )
    draft = {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo"}]}
    held = Execution.objects.get(intent=submit(agent, draft, "k1", django_capture_on_commit_callbacks))
    assert (held.status, held.step_runs.get().status) == ("running", "held")
    page = sre_client.get("/killswitch/", headers=HTMX).content.decode()
    assert f'data-held="{held.pk}"' in page and 'id="held-count">1<' in page
    assert 'class="holding">1 execution<' in page

    with django_capture_on_commit_callbacks(execute=True):
        released = change(
            sre_client, engaged="false", scope="global", target="", reason="failover done", held="resume"
        )

    assert b"Kill switch global:* released." in released.content
    assert (
        b"Held work: 1 step(s) resumed, 0 execution(s) cancelled, 0 step(s) still held." in released.content
    )
    assert (
        b"Nothing new is held" in released.content
        and b"Nothing is held by the kill switch" in released.content
    )
    assert [e.type for e in switch_events()] == [
        "controlplane.killswitch.engaged",
        "controlplane.killswitch.released",
    ]
    held.refresh_from_db()
    assert held.status == "completed"
    resumed = LedgerEvent.objects.get(type="controlplane.execution.step.resumed")
    assert (resumed.actor, resumed.data["reason"]) == ("acme/sam", "failover done")
    ran = submit(agent, draft, "k2", django_capture_on_commit_callbacks)
    assert Execution.objects.get(intent=ran).status == "completed"


def test_held_work_is_decided_one_by_one_from_the_page(sre_client, agent, django_capture_on_commit_callbacks):
    draft = {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo"}]}
    change(sre_client, engaged="true", scope="tenant", target="acme", reason="drill")
    keep = Execution.objects.get(intent=submit(agent, draft, "k1", django_capture_on_commit_callbacks))
    drop = Execution.objects.get(intent=submit(agent, draft, "k2", django_capture_on_commit_callbacks))
    page = sre_client.get("/killswitch/").content.decode()
    assert "<html" in page and 'title="a switch still holds it"' in page  # resume disabled while engaged
    before = LedgerEvent.objects.count()
    refused = sre_client.post(
        "/killswitch/held/", {"execution": keep.pk, "decision": "resume", "reason": "go"}, headers=HTMX
    )
    assert refused.status_code == 503 and b'data-code="KILL_SWITCH_ENGAGED"' in refused.content
    assert LedgerEvent.objects.count() == before

    released = change(sre_client, engaged="false", scope="tenant", target="acme", reason="over")
    assert b"0 step(s) resumed, 0 execution(s) cancelled, 2 step(s) still held." in released.content
    with django_capture_on_commit_callbacks(execute=True):
        resumed = sre_client.post(
            "/killswitch/held/",
            {"execution": keep.pk, "decision": "resume", "reason": "needed"},
            headers=HTMX,
        )
    assert resumed.status_code == 200 and f"Execution {keep.pk[:12]} resumed.".encode() in resumed.content
    cancelled = sre_client.post(
        "/killswitch/held/", {"execution": drop.pk, "decision": "cancel", "reason": "stale"}, headers=HTMX
    )
    assert b"<html" not in cancelled.content and b"Nothing is held by the kill switch" in cancelled.content
    keep.refresh_from_db()
    drop.refresh_from_db()
    assert (keep.status, drop.status) == ("completed", "cancelled")
    no_reason = sre_client.post(
        "/killswitch/held/", {"execution": drop.pk, "decision": "cancel", "reason": " "}, headers=HTMX
    )
    assert b'data-code="KILL_SWITCH_REASON_REQUIRED"' in no_reason.content
    redirect = sre_client.post("/killswitch/held/", {"execution": "x", "decision": "cancel", "reason": "y"})
    assert redirect.status_code == 404 and b'data-code="NOT_FOUND"' in redirect.content


def test_another_tenants_held_work_is_neither_shown_nor_decided(
    client, acme, agent, django_capture_on_commit_callbacks
):
    from tests.identity.factories import TenantFactory

    services.killswitch_set(scope="global", engaged=True, reason="drill", actor="cli")
    draft = {"goal": "echo", "steps": [{"key": "a", "action": "noop.echo"}]}
    held = Execution.objects.get(intent=submit(agent, draft, "k1", django_capture_on_commit_callbacks))
    services.killswitch_set(scope="global", engaged=False, reason="over", actor="cli")
    outsider = PrincipalFactory(
        tenant=TenantFactory(slug="globex"), human=True, capabilities=["console.view", "killswitch.manage"]
    )
    client.force_login(outsider.user)
    assert held.pk not in client.get("/killswitch/").content.decode()
    before = LedgerEvent.objects.count()
    response = client.post(
        "/killswitch/held/", {"execution": held.pk, "decision": "cancel", "reason": "mine"}, headers=HTMX
    )
    assert response.status_code == 404 and b'data-code="NOT_FOUND"' in response.content
    assert LedgerEvent.objects.count() == before
    held.refresh_from_db()
    assert held.status == "running"


def test_engage_per_tenant_and_per_action(sre_client):
    change(sre_client, engaged="true", scope="tenant", target="acme", reason="tenant incident")
    change(sre_client, engaged="true", scope="action", target="http.webhook", reason="runner broken")
    assert selectors.killswitch_engaged_for(tenant="acme", action="noop.echo").scope == "tenant"
    assert selectors.killswitch_engaged_for(tenant="globex", action="http.webhook").scope == "action"
    assert selectors.killswitch_engaged_for(tenant="globex", action="noop.echo") is None
    body = sre_client.get("/killswitch/").content.decode()
    assert 'data-switch="tenant:acme"' in body and 'data-switch="action:http.webhook"' in body


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"engaged": "true", "scope": "global", "reason": "  "}, 400, "KILL_SWITCH_REASON_REQUIRED"),
        ({"engaged": "true", "scope": "tenant", "target": "", "reason": "x"}, 400, "VALIDATION_FAILED"),
        ({"engaged": "true", "scope": "planet", "reason": "x"}, 400, "VALIDATION_FAILED"),
        ({"engaged": "maybe", "scope": "global", "reason": "x"}, 400, "VALIDATION_FAILED"),
    ],
)
def test_refusals_carry_their_code_and_change_nothing(sre_client, fields, status, code):
    response = change(sre_client, **fields)
    assert response.status_code == status and f'data-code="{code}"'.encode() in response.content
    assert response["HX-Retarget"] == "#notice"
    assert not KillSwitch.objects.exists() and not switch_events()


def test_changing_the_switch_needs_killswitch_manage(client, decider):
    client.force_login(decider.user)
    response = change(client, engaged="true", scope="global", reason="x")
    assert response.status_code == 403 and b"killswitch.manage" in response.content
    assert not KillSwitch.objects.exists()


def test_changing_the_switch_needs_the_csrf_token(sre):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(sre.user)
    response = csrf_client.post("/killswitch/change/", {"engaged": "true", "scope": "global", "reason": "x"})
    assert response.status_code == 403 and b'data-code="CSRF_FAILED"' in response.content
    assert not KillSwitch.objects.exists()


def test_without_htmx_a_change_redirects_to_the_page(sre_client):
    response = sre_client.post("/killswitch/change/", {"engaged": "true", "scope": "global", "reason": "x"})
    assert response.status_code == 302 and response["Location"] == "/killswitch/"


def test_the_dashboard_shows_an_engaged_switch_loudly(client, decider):
    client.force_login(decider.user)
    assert b'id="killswitch-banner"' not in client.get("/").content
    services.killswitch_set(scope="global", engaged=True, reason="all hands", actor="cli")
    body = client.get("/").content.decode()
    assert 'id="killswitch-banner"' in body and "KILL SWITCH ENGAGED" in body and "all hands" in body
    # Another tenant's switch is not this operator's business; an action switch holds everyone.
    services.killswitch_set(scope="global", engaged=False, reason="over", actor="cli")
    services.killswitch_set(scope="tenant", target="globex", engaged=True, reason="theirs", actor="cli")
    assert b'id="killswitch-banner"' not in client.get("/").content
    services.killswitch_set(scope="action", target="noop.echo", engaged=True, reason="echo off", actor="cli")
    assert b"action:noop.echo" in client.get("/").content


def test_a_tenant_operator_turns_only_its_own_tenants_switch(client, acme):
    """Before, any tenant's `killswitch.manage` engaged the global switch from the console."""
    tenant_sre = PrincipalFactory(tenant=acme, human=True, capabilities=["console.view", "killswitch.manage"])
    client.force_login(tenant_sre.user)
    before = (LedgerEvent.objects.count(), KillSwitch.objects.count())
    response = change(client, scope="global", engaged="true", reason="not mine to pull")
    assert response.status_code == 403 and b"PLATFORM_SCOPE_REQUIRED" in response.content
    assert (LedgerEvent.objects.count(), KillSwitch.objects.count()) == before
    response = change(client, scope="tenant", target=acme.slug, engaged="true", reason="our incident")
    assert response.status_code == 200 and KillSwitch.objects.get(scope="tenant").engaged
