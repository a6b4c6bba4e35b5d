"""Django admin (rule versions through the service; the rest read-only) and `manage.py incidents`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from controlplane.ledger.models import LedgerEvent
from incidents.models import DetectionRuleVersion, Incident
from tests.identity.factories import UserFactory
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
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


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
        (1, 4, "user/root"),
        (2, 6, "user/root"),
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


def test_cli_list_show_ack_resolve_close(tenant, rule, oncall):
    incident = open_incident(tenant)
    listed = run("list", "--status", "open")
    assert listed.split("\t")[:3] == [incident.pk, "open", "high"]
    shown = run("show", incident.pk)
    assert (
        "rule_precision: 8000 x 2500 bp = 2000" in shown and "PROMOTE THRESHOLD_MET CONFIDENCE_MET" in shown
    )
    assert "controlplane.incident.opened" in shown
    assert run("ack", incident.pk, "--as", "acme/alice").strip() == f"{incident.pk} acknowledged"
    assert (
        run("resolve", incident.pk, "--as", "acme/alice", "--reason", "rolled back")
        .strip()
        .endswith("resolved")
    )
    assert run("close", incident.pk, "--as", "acme/alice").strip().endswith("closed")
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


def test_cli_refusals_carry_the_reason_code_and_write_nothing(tenant, rule, oncall):
    incident = open_incident(tenant)
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match=r"^INCIDENT_TRANSITION_NOT_ALLOWED: "):
        run("close", incident.pk, "--as", "acme/alice")
    with pytest.raises(CommandError, match=r"^INCIDENT_NOT_FOUND: "):
        run("show", "nope")
    with pytest.raises(CommandError, match=r"^INCIDENT_REASON_REQUIRED: "):
        run("resolve", incident.pk, "--as", "acme/alice", "--reason", " ")
    assert LedgerEvent.objects.count() == before
    assert Incident.objects.get().status == "open"


def test_cli_mitigate_submits_the_draft_as_the_remediation(tenant, rule, oncall, tmp_path):
    incident = open_incident(tenant)
    draft = tmp_path / "fix.json"
    draft.write_text(
        json.dumps({"goal": "restart", "steps": [{"key": "a", "action": "noop.echo", "inputs": {}}]})
    )
    assert (
        run("mitigate", incident.pk, "--as", "acme/alice", "--reason", "restart", "--draft", str(draft))
        .strip()
        .endswith("mitigating")
    )
    incident.refresh_from_db()
    assert incident.remediation_intent.plan.goal == "restart"
    with pytest.raises(CommandError, match=r"^INCIDENT_TRANSITION_NOT_ALLOWED: "):
        run("reopen", incident.pk, "--as", "acme/alice", "--reason", "not resolved yet")
    run("resolve", incident.pk, "--as", "acme/alice", "--reason", "restarted")
    assert (
        run("reopen", incident.pk, "--as", "acme/alice", "--reason", "back again").strip().endswith(" open")
    )
