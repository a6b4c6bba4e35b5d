"""Never lose an alert: an Alertmanager or Grafana alert whose labels name no service is stored as an
unattributed signal (SIGNAL_UNATTRIBUTED) instead of refusing the delivery; the per-tenant, versioned label
mapping (services, API, CLI, ledgered); signals no rule matched say so (SIGNAL_NO_RULE_MATCHED); replay
re-derives both."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from controlplane.identity.cli import TOKEN_ENV
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from incidents import services
from incidents.models import EvidenceBundle, LabelMapping, Signal
from incidents.replay import replay_incidents
from tests.envelope import without_meta
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.incidents.factories import T0, am_alert, am_payload, auth, iso, written

pytestmark = pytest.mark.django_db

AM = "/api/v1/signals/alertmanager/"
GRAFANA = "/api/v1/signals/grafana/"
MAPPING = "/api/v1/label-mapping/"


def post(client, path, body, token):
    return client.post(path, json.dumps(body).encode(), content_type="application/json", **auth(token))


def grafana_alert(labels: dict[str, str], fingerprint: str) -> dict:
    return {
        "status": "firing",
        "labels": {"alertname": "DiskFull", **labels},
        "annotations": {"summary": "disk full"},
        "startsAt": iso(T0),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


def grafana_payload(*alerts: dict) -> dict:
    return {"version": "1", "status": "firing", "receiver": "cp", "alerts": list(alerts)}


def bare(alert: dict) -> dict:
    """An alert with no service, app or job label (common in Grafana-managed alerts)."""
    alert["labels"].pop("service")
    return alert


@pytest.fixture
def admin_token(tenant):
    return token_for(
        PrincipalFactory(
            tenant=tenant, name="ops", human=True, capabilities=["detection.manage", "incidents.read"]
        )
    )


def test_an_alert_naming_no_service_is_stored_unattributed_and_the_delivery_is_accepted(
    client, sender_token, rule
):
    payload = am_payload(
        am_alert(fingerprint="a000000000000001"), bare(am_alert(fingerprint="a000000000000002"))
    )
    response = post(client, AM, payload, sender_token)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["unattributed"], body["no_rule_matched"]) == (2, 1, 0)
    attributed, unattributed = body["signals"]
    assert (attributed["service"], attributed["reason_codes"]) == ("checkout", [])
    assert (unattributed["service"], unattributed["reason_codes"]) == ("", ["SIGNAL_UNATTRIBUTED"])
    row = Signal.objects.get(fingerprint="a000000000000002")
    assert (row.service, row.reason_codes, row.name) == ("", ["SIGNAL_UNATTRIBUTED"], "HighErrorRate")
    event = LedgerEvent.objects.get(subject=f"signal/{row.pk}")
    assert event.reason_codes == ["SIGNAL_UNATTRIBUTED"]
    assert event.data["attribution"] == {"mapping_version": 0, "label": ""}
    assert event.data["rule_matched"] is None  # no rule counts an unattributed signal
    assert not EvidenceBundle.objects.filter(signal_ids__contains=[row.pk]).exists()
    assert replay_incidents().differences == []


def test_a_payload_that_is_not_alertmanager_at_all_is_still_refused(client, sender_token):
    before = written()
    response = post(client, AM, {"alerts": [{"labels": {}}]}, sender_token)
    assert (response.status_code, response.json()["code"]) == (400, "SIGNAL_INVALID")
    assert written() == before


def test_a_signal_no_rule_matches_says_so_in_the_answer_the_row_and_the_ledger(client, sender_token, rule):
    payload = am_payload(am_alert(service="search", fingerprint="b000000000000001"))
    body = post(client, AM, payload, sender_token).json()
    assert body["no_rule_matched"] == 1
    assert body["signals"][0]["reason_codes"] == ["SIGNAL_NO_RULE_MATCHED"]
    row = Signal.objects.get(fingerprint="b000000000000001")
    event = LedgerEvent.objects.get(subject=f"signal/{row.pk}")
    assert (row.reason_codes, event.reason_codes, event.data["rule_matched"]) == (
        ["SIGNAL_NO_RULE_MATCHED"],
        ["SIGNAL_NO_RULE_MATCHED"],
        False,
    )
    # a signal of the rule's service is counted: no code
    counted = post(client, AM, am_payload(am_alert(fingerprint="b000000000000002")), sender_token).json()
    assert (counted["no_rule_matched"], counted["signals"][0]["reason_codes"]) == (0, [])
    assert replay_incidents().differences == []


def test_the_label_mapping_is_versioned_ledgered_and_attributes_by_its_labels(
    client, tenant, sender_token, admin_token
):
    assert without_meta(client.get(MAPPING, **auth(admin_token))) == {
        "version": 0,
        "service_labels": ["service", "app", "job"],
    }
    created = post(
        client, MAPPING, {"service_labels": ["service", "app", "job", "team"], "reason": "gf"}, admin_token
    )
    assert created.status_code == 201, created.content
    assert without_meta(created) == {"version": 1, "service_labels": ["service", "app", "job", "team"]}
    event = LedgerEvent.objects.get(type="controlplane.signal.label_mapping.versioned")
    assert (event.tenant, event.data["version"], event.data["service_labels"]) == (
        "acme",
        1,
        ["service", "app", "job", "team"],
    )
    # the same labels again: nothing new
    again = post(client, MAPPING, {"service_labels": ["service", "app", "job", "team"]}, admin_token)
    assert again.status_code == 200 and LabelMapping.objects.count() == 1
    payload = grafana_payload(grafana_alert({"team": "storage"}, "c000000000000001"))
    body = post(client, GRAFANA, payload, sender_token).json()
    assert (body["unattributed"], body["signals"][0]["service"]) == (0, "storage")
    row = Signal.objects.get(fingerprint="c000000000000001")
    assert LedgerEvent.objects.get(subject=f"signal/{row.pk}").data["attribution"] == {
        "mapping_version": 1,
        "label": "team",
    }
    assert replay_incidents().differences == []


@pytest.mark.parametrize(
    ("labels", "code"),
    [
        ([], "VALIDATION_FAILED"),  # the request schema says it (min 1 item, the label pattern, at most 10)
        (["not a label"], "VALIDATION_FAILED"),
        ([f"l{i}" for i in range(11)], "VALIDATION_FAILED"),
        (["service", "service"], "LABEL_MAPPING_INVALID"),  # the service: each label once
    ],
)
def test_an_invalid_label_mapping_is_refused_and_writes_nothing(client, admin_token, labels, code):
    before = LedgerEvent.objects.count()
    response = post(client, MAPPING, {"service_labels": labels}, admin_token)
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert LedgerEvent.objects.count() == before and not LabelMapping.objects.exists()


def test_setting_the_mapping_needs_detection_manage(client, tenant, sender_token):
    reader = token_for(
        PrincipalFactory(tenant=tenant, name="eve", human=True, capabilities=["incidents.read"])
    )
    response = post(client, MAPPING, {"service_labels": ["team"]}, reader)
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert not LabelMapping.objects.exists()


def test_a_tenants_mapping_is_its_own(client, tenant, admin_token):
    other = TenantFactory(slug="globex")
    other_admin = PrincipalFactory(
        tenant=other, name="ops", human=True, capabilities=["detection.manage", "incidents.read"]
    )
    other_sender = PrincipalFactory(tenant=other, name="am", capabilities=["signals.ingest"])
    assert post(client, MAPPING, {"service_labels": ["team"]}, admin_token).status_code == 201
    # globex still sees (and attributes by) the default
    assert client.get(MAPPING, **auth(token_for(other_admin))).json()["version"] == 0
    payload = grafana_payload(grafana_alert({"team": "storage"}, "d000000000000001"))
    body = post(client, GRAFANA, payload, token_for(other_sender)).json()
    assert (body["unattributed"], body["signals"][0]["service"]) == (1, "")


def test_replay_finds_a_recorded_attribution_the_mapping_does_not_give(tenant, sender):
    services.label_mapping_set(tenant=tenant, service_labels=["team"], actor="test")
    # a signal event claiming the mapping's version 1 attributed it by `job`, which v1 does not name
    ledger_append(
        type="controlplane.signal.received",
        subject="signal/forged",
        data={
            "signal": "forged",
            "source": "alertmanager/x",
            "source_kind": "alertmanager",
            "service": "api",
            "name": "X",
            "severity": "high",
            "severity_raw": "high",
            "fingerprint": "f",
            "labels": {"alertname": "X", "job": "api", "team": "core"},
            "annotations": {},
            "status": "firing",
            "observed_at": iso(T0),
            "starts_at": iso(T0),
            "ends_at": None,
            "generator_url": "",
            "suppressed_by": None,
            "attribution": {"mapping_version": 1, "label": "job"},
            "rule_matched": False,
        },
        tenant=tenant.slug,
        actor="test",
        time=T0,
    )
    differences = replay_incidents().differences
    assert [(d.subject, d.field, d.rebuilt) for d in differences] == [
        ("signal/forged", "attribution", "REPLAY_ATTRIBUTION_MISMATCH: ['core', 'team']")
    ]


def test_replay_finds_a_no_rule_matched_that_a_rule_in_force_contradicts(tenant, rule, client, sender_token):
    payload = am_payload(am_alert(fingerprint="e000000000000001"))
    post(client, AM, payload, sender_token)
    row = Signal.objects.get(fingerprint="e000000000000001")
    recorded = LedgerEvent.objects.get(subject=f"signal/{row.pk}")
    assert recorded.data["rule_matched"] is True
    forged = {**recorded.data, "signal": "other", "fingerprint": "g", "rule_matched": False}
    ledger_append(
        type="controlplane.signal.received",
        subject="signal/other",
        data=forged,
        tenant="acme",
        actor="t",
        time=T0,
    )
    assert [(d.subject, d.field) for d in replay_incidents().differences] == [
        ("signal/other", "rule_matched")
    ]


def test_the_signals_page_marks_unattributed_and_no_rule_matched_signals(client, tenant, sender_token, rule):
    payload = am_payload(
        bare(am_alert(fingerprint="f000000000000001")),
        am_alert(service="search", fingerprint="f000000000000002"),
    )
    post(client, AM, payload, sender_token)
    person = PrincipalFactory(
        tenant=tenant, name="carol", human=True, capabilities=["console.view", "incidents.read"]
    )
    client.force_login(person.user)
    page = client.get("/incidents/signals/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-unattributed="1"' in html and 'data-no-rule-matched="1"' in html
    assert "SIGNAL_UNATTRIBUTED" in html and "SIGNAL_NO_RULE_MATCHED" in html
    fragment = client.get("/incidents/signals/", HTTP_HX_REQUEST="true")
    assert b"<html" not in fragment.content and b"unattributed" in fragment.content


def test_the_labelmapping_command_shows_and_sets_as_the_person_with_a_token(tenant, monkeypatch, capsys):
    admin = PrincipalFactory(
        tenant=tenant, name="ops", human=True, capabilities=["detection.manage", "incidents.read"]
    )
    monkeypatch.setenv(TOKEN_ENV, token_for(admin))
    call_command("labelmapping", "show")
    assert "v0 (the default): service <- service | app | job" in capsys.readouterr().out
    call_command("labelmapping", "set", "service", "team", "--reason", "grafana teams")
    assert "v1: service <- service | team" in capsys.readouterr().out
    assert LedgerEvent.objects.filter(type="controlplane.signal.label_mapping.versioned").count() == 1
    with pytest.raises(CommandError, match="LABEL_MAPPING_INVALID"):
        call_command("labelmapping", "set", "bad label", "--reason", "x")
    monkeypatch.setenv(TOKEN_ENV, "")
    with pytest.raises(CommandError, match="AUTH_REQUIRED"):
        call_command("labelmapping", "set", "team", "--reason", "x")
    assert LabelMapping.objects.count() == 1


def test_the_docs_rule_example_makes_a_rule_that_then_matches_the_new_service(client, tenant, sender_token):
    import re
    import shlex

    from django.conf import settings

    text = (settings.BASE_DIR / "docs" / "incidents.md").read_text()
    command = re.search(
        r"```\n(curl -sS -X POST http://127.0.0.1:8000/api/v1/detection-rules/.*?)```", text, re.S
    )
    words = shlex.split(command.group(1).replace("\\\n", " "))
    body = json.loads(words[words.index("-d") + 1])
    person = PrincipalFactory(tenant=tenant, name="ops", human=True, capabilities=["detection.manage"])
    assert post(client, "/api/v1/detection-rules/", body, token_for(person)).status_code == 201
    answer = post(
        client, AM, am_payload(am_alert(service="payments", fingerprint="h000000000000001")), sender_token
    )
    assert answer.json()["no_rule_matched"] == 0
