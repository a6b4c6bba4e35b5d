"""Django admin (rule versions through the service; the rest read-only) and `manage.py incidents`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from controlplane.ledger.models import LedgerEvent
from incidents.models import DetectionRuleVersion, Incident
from tests.admin_helpers import admin_client_for
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.incidents.factories import open_incident

pytestmark = pytest.mark.django_db

RULE_FORM = {
    "rule_name": "db-latency",
    "enabled": "on",
    "match_service": "db",
    "match_name": "",
    "match_labels": "{}",
    "min_severity": "info",
    "threshold": "4",
    "window_seconds": "120",
    "severity": "high",
    "precision_bp": "9000",
    "reason": "new database",
}


@pytest.fixture
def admin_client(client):
    return admin_client_for(client)


def test_admin_adds_rule_versions_through_the_service(admin_client, tenant):
    response = admin_client.post(
        "/admin/incidents/detectionruleversion/add/", {**RULE_FORM, "tenant": tenant.pk}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    admin_client.post(
        "/admin/incidents/detectionruleversion/add/", {**RULE_FORM, "tenant": tenant.pk, "threshold": "6"}
    )
    versions = DetectionRuleVersion.objects.order_by("version")
    assert [(v.version, v.threshold, v.created_by) for v in versions] == [
        (1, 4, "admins/root"),
        (2, 6, "admins/root"),
    ]
    assert LedgerEvent.objects.filter(type="controlplane.detection.rule.versioned").count() == 2
    change = admin_client.post(
        f"/admin/incidents/detectionruleversion/{versions[0].pk}/change/", {"threshold": "1"}
    )
    assert change.status_code == 403
    assert DetectionRuleVersion.objects.get(version=1).threshold == 4


def test_admin_refuses_an_invalid_rule_and_writes_nothing(admin_client, tenant):
    before = LedgerEvent.objects.count()
    response = admin_client.post(
        "/admin/incidents/detectionruleversion/add/",
        {**RULE_FORM, "tenant": tenant.pk, "precision_bp": "20000"},
    )
    assert response.status_code == 200 and "precision_bp" in response.content.decode()
    assert LedgerEvent.objects.count() == before and not DetectionRuleVersion.objects.exists()


def test_admin_shows_incidents_read_only(admin_client, tenant, rule):
    incident = open_incident(tenant)
    assert admin_client.get("/admin/incidents/incident/").status_code == 200
    assert (
        admin_client.post(f"/admin/incidents/incident/{incident.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Incident.objects.filter(pk=incident.pk).exists()


def run(*args: str) -> str:
    out = StringIO()
    call_command("incidents", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def as_oncall(oncall, oncall_token, monkeypatch):
    """The on-call person's API token in CONTROLPLANE_TOKEN: the CLI acts for them."""
    monkeypatch.setenv("CONTROLPLANE_TOKEN", oncall_token)
    return oncall


def test_cli_list_show_ack_resolve_close(tenant, rule, oncall, as_oncall):
    incident = open_incident(tenant)
    listed = run("list", "--status", "open")
    assert listed.split("\t")[:3] == [incident.pk, "open", "high"]
    shown = run("show", incident.pk)
    assert (
        "rule_precision: 8000 x 2500 bp = 2000" in shown and "PROMOTE THRESHOLD_MET CONFIDENCE_MET" in shown
    )
    assert "controlplane.incident.opened" in shown
    assert run("ack", incident.pk, "--reason", "looking").strip() == f"{incident.pk} acknowledged"
    assert run("resolve", incident.pk, "--reason", "rolled back").strip().endswith("resolved")
    assert run("close", incident.pk, "--reason", "done").strip().endswith("closed")
    body = json.loads(run("show", incident.pk, "--json"))
    assert [t["type"].rsplit(".", 1)[-1] for t in body["timeline"]][-3:] == [
        "acknowledged",
        "resolved",
        "closed",
    ]
    assert (
        body["timeline"][-2]["actor"] == oncall.ref
        and body["timeline"][-2]["data"]["reason"] == "rolled back"
    )


def test_cli_refusals_carry_the_reason_code_and_write_nothing(tenant, rule, oncall, as_oncall):
    incident = open_incident(tenant)
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match=r"^INCIDENT_TRANSITION_NOT_ALLOWED: "):
        run("close", incident.pk, "--reason", "done")
    with pytest.raises(CommandError, match=r"^INCIDENT_NOT_FOUND: "):
        run("show", "nope")
    with pytest.raises(CommandError, match=r"^INCIDENT_REASON_REQUIRED: "):
        run("resolve", incident.pk, "--reason", " ")
    assert LedgerEvent.objects.count() == before
    assert Incident.objects.get().status == "open"


def test_cli_mitigate_submits_the_draft_as_the_remediation(tenant, rule, oncall, as_oncall, tmp_path):
    incident = open_incident(tenant)
    draft = tmp_path / "fix.json"
    draft.write_text(
        json.dumps({"goal": "restart", "steps": [{"key": "a", "action": "noop.echo", "inputs": {}}]})
    )
    assert (
        run("mitigate", incident.pk, "--reason", "restart", "--draft", str(draft))
        .strip()
        .endswith("mitigating")
    )
    incident.refresh_from_db()
    assert incident.remediation_intent.plan.goal == "restart"
    with pytest.raises(CommandError, match=r"^INCIDENT_TRANSITION_NOT_ALLOWED: "):
        run("reopen", incident.pk, "--reason", "not resolved yet")
    run("resolve", incident.pk, "--reason", "restarted")
    assert run("reopen", incident.pk, "--reason", "back again").strip().endswith(" open")


def test_cli_raises_the_severity_as_the_person(tenant, rule, as_oncall):
    incident = open_incident(tenant)
    assert run("severity", incident.pk, "--to", "critical", "--reason", "customers affected").strip() == (
        f"{incident.pk} open"
    )
    incident.refresh_from_db()
    assert incident.severity == "critical"
    event = LedgerEvent.objects.order_by("-seq").first()
    assert event.actor == as_oncall.ref and event.data["reason"] == "customers affected"


def test_cli_transitions_refuse_without_a_valid_token_and_write_nothing(tenant, rule, monkeypatch, tmp_path):
    incident = open_incident(tenant)
    reader = PrincipalFactory(tenant=tenant, name="ro", human=True, capabilities=["incidents.read"])
    stranger = PrincipalFactory(
        tenant=TenantFactory(slug="other"), name="eve", human=True, capabilities=["incidents.manage"]
    )
    reader_token, stranger_token = token_for(reader), token_for(stranger)
    before = LedgerEvent.objects.count()
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"^AUTH_REQUIRED: "):
        run("ack", incident.pk, "--reason", "r")
    wrong = tmp_path / "token"
    wrong.write_text("cp_12345678_nope")
    with pytest.raises(CommandError, match=r"^AUTH_INVALID_TOKEN"):
        run("ack", incident.pk, "--reason", "r", "--token-file", str(wrong))
    monkeypatch.setenv("CONTROLPLANE_TOKEN", reader_token)
    with pytest.raises(CommandError, match=r"^CAPABILITY_MISSING: acme/ro lacks 'incidents.manage'"):
        run("ack", incident.pk, "--reason", "r")
    monkeypatch.setenv("CONTROLPLANE_TOKEN", stranger_token)
    with pytest.raises(CommandError, match=r"^INCIDENT_NOT_FOUND: "):
        run("ack", incident.pk, "--reason", "r")
    with pytest.raises(CommandError, match=r"the following arguments are required: --reason"):
        run("ack", incident.pk)
    assert LedgerEvent.objects.count() == before
    assert Incident.objects.get().status == "open"
