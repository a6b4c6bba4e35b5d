"""Signal ingest through the API: Alertmanager v4, Grafana v1 (with its HMAC), generic JSON; dedup;
refusals with the reason code and the field at fault, and nothing written."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from controlplane.ledger.models import LedgerEvent
from incidents.models import Signal
from tests.identity.factories import PrincipalFactory, token_for
from tests.incidents.factories import T0, am_alert, am_payload, at, auth, generic, iso, written

pytestmark = pytest.mark.django_db

AM = "/api/v1/signals/alertmanager/"
GRAFANA = "/api/v1/signals/grafana/"
GENERIC = "/api/v1/signals/"


def post(client, path, body, token, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, raw, content_type="application/json", **auth(token), **headers)


def test_alertmanager_payload_becomes_normalised_signals(client, sender_token):
    payload = am_payload(
        am_alert(severity="critical", fingerprint="a1b2c3d4e5f60718"),
        am_alert(
            severity="warning", fingerprint="1111222233334444", extra_labels={"instance": "10.0.0.7:9100"}
        ),
    )
    response = post(client, AM, payload, sender_token)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    first = Signal.objects.get(fingerprint="a1b2c3d4e5f60718")
    assert (first.source, first.source_kind, first.service, first.name) == (
        "alertmanager/alertmanager",
        "alertmanager",
        "checkout",
        "HighErrorRate",
    )
    assert (first.severity, first.severity_raw, first.status) == ("critical", "critical", "firing")
    assert first.observed_at == T0 and first.ends_at is None  # 0001-01-01T00:00:00Z while firing
    second = Signal.objects.get(fingerprint="1111222233334444")
    assert (second.severity, second.severity_raw) == ("medium", "warning")
    assert second.labels["instance"] == "10.0.0.7:9100"
    events = LedgerEvent.objects.filter(type="controlplane.signal.received").order_by("seq")
    assert [e.subject for e in events] == [f"signal/{first.id}", f"signal/{second.id}"]
    assert events[0].data["observed_at"] == "2026-03-01T12:00:00.000000Z"


def test_the_same_alert_delivered_twice_is_stored_once(client, sender_token):
    payload = am_payload(am_alert(fingerprint="a1b2c3d4e5f60718"))
    assert post(client, AM, payload, sender_token).json()["accepted"] == 1
    before = written()
    again = post(client, AM, payload, sender_token)
    assert again.status_code == 200  # Alertmanager retries until it sees a 2xx
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)
    assert written() == before


def test_resolution_of_a_stored_alert_is_a_new_signal(client, sender_token):
    post(client, AM, am_payload(am_alert(fingerprint="a1b2c3d4e5f60718")), sender_token)
    resolved = am_alert(fingerprint="a1b2c3d4e5f60718", status="resolved", ends=at(600))
    response = post(client, AM, am_payload(resolved), sender_token)
    assert response.json()["accepted"] == 1
    signal = Signal.objects.get(status="resolved")
    assert signal.observed_at == at(600) and signal.starts_at == T0


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alerts[0].labels.alertname"),
        (lambda p: p["alerts"][1].update(startsAt="yesterday"), "alerts[1].startsAt"),
        (lambda p: p["alerts"][0].update(status="pending"), "alerts[0].status"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.update(alerts=[]), "alerts"),
        (lambda p: p["alerts"][0].update(status="resolved"), "alerts[0].endsAt"),
        (lambda p: p["alerts"][0]["labels"].update(team=7), "alerts[0].labels.team"),
    ],
)
def test_an_unnormalisable_payload_is_refused_naming_the_field_and_writes_nothing(
    client, sender_token, mutate, field
):
    payload = am_payload(am_alert(fingerprint="aaaa000000000001"), am_alert(fingerprint="aaaa000000000002"))
    mutate(payload)
    before = written()
    response = post(client, AM, payload, sender_token)
    assert response.status_code == 400
    assert response.json()["code"] == "SIGNAL_INVALID"
    assert response.json()["field"] == field
    assert written() == before


@pytest.mark.parametrize("path", [AM, GENERIC])
def test_body_that_is_not_json_is_refused(client, sender_token, path):
    before = written()
    response = post(client, path, b"{not json", sender_token)
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (
        400,
        "SIGNAL_INVALID",
        "(body)",
    )
    assert written() == before


def test_ingest_needs_the_signals_ingest_capability(client, tenant):
    reader = PrincipalFactory(tenant=tenant, name="reader", capabilities=["incidents.read"])
    token = token_for(reader)
    before = written()
    response = post(client, AM, am_payload(am_alert()), token)
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert client.post(AM, b"{}", content_type="application/json").json()["code"] == "AUTH_REQUIRED"
    assert written() == before


def grafana_payload(**overrides):
    alert = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "app": "ledger-db", "severity": "sev2", "grafana_folder": "db"},
        "annotations": {"summary": "disk 97% full"},
        "startsAt": "2026-03-01T12:00:00.123456789+01:00",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://grafana.example/alerting/grafana/abc/view",
        "fingerprint": "c6eadffa33fcdf37",
        "silenceURL": "http://grafana.example/alerting/silence/new",
        "dashboardURL": "",
        "panelURL": "",
        "values": {"B": 97.2, "C": 1},
        "valueString": "[ var='B' labels={} value=97.2 ]",
    }
    return {
        "receiver": "control-plane",
        "status": "firing",
        "orgId": 1,
        "alerts": [alert],
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://grafana.example/",
        "version": "1",
        "groupKey": '{}/{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] DiskFull",
        "state": "alerting",
        "message": "**Firing**",
        **overrides,
    }


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    signed = f"{timestamp}:".encode() + body if timestamp else body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def test_grafana_payload_without_a_configured_secret(client, sender_token, settings):
    settings.CONTROLPLANE_GRAFANA_HMAC_SECRET = ""
    response = post(client, GRAFANA, grafana_payload(), sender_token)
    assert response.status_code == 200, response.content
    signal = Signal.objects.get()
    assert (signal.source, signal.service, signal.name, signal.severity) == (
        "grafana/alertmanager",
        "ledger-db",
        "DiskFull",
        "high",
    )
    assert iso(signal.observed_at) == "2026-03-01T11:00:00.123456Z"  # nanoseconds cut, UTC
    assert signal.fingerprint == "c6eadffa33fcdf37"


def test_grafana_hmac_over_timestamp_colon_body(client, sender_token, settings):
    settings.CONTROLPLANE_GRAFANA_HMAC_SECRET = "s3cret-shared-with-grafana"
    body = json.dumps(grafana_payload()).encode()
    now = str(int(time.time()))
    timed = post(
        client,
        GRAFANA,
        body,
        sender_token,
        HTTP_X_GRAFANA_ALERTING_SIGNATURE=sign(settings.CONTROLPLANE_GRAFANA_HMAC_SECRET, body, now),
        HTTP_X_GRAFANA_ALERTING_SIGNATURE_TIMESTAMP=now,
    )
    assert timed.status_code == 200, timed.content
    body2 = json.dumps(
        grafana_payload(alerts=[{**grafana_payload()["alerts"][0], "fingerprint": "0000000000000003"}])
    ).encode()
    other_header = post(
        client,
        GRAFANA,
        body2,
        sender_token,
        HTTP_X_GRAFANA_ALERT_SIGNATURE=sign(settings.CONTROLPLANE_GRAFANA_HMAC_SECRET, body2, now),
        HTTP_X_GRAFANA_ALERTING_SIGNATURE_TIMESTAMP=now,
    )
    assert other_header.status_code == 200, other_header.content
    assert Signal.objects.count() == 2


def test_grafana_hmac_without_the_timestamp_header_is_refused_as_stale(client, sender_token, settings):
    """A body-only signature never expires: a captured delivery could be replayed for ever."""
    secret = settings.CONTROLPLANE_GRAFANA_HMAC_SECRET = "s3cret-shared-with-grafana"
    body = json.dumps(grafana_payload()).encode()
    before = written()
    response = post(client, GRAFANA, body, sender_token, HTTP_X_GRAFANA_ALERTING_SIGNATURE=sign(secret, body))
    assert (response.status_code, response.json()["code"]) == (401, "STALE_TIMESTAMP")
    assert written() == before


def _tenant_signed(secret: str, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    return {
        "HTTP_X_GRAFANA_ALERTING_SIGNATURE": sign(secret, body, timestamp),
        "HTTP_X_GRAFANA_ALERTING_SIGNATURE_TIMESTAMP": timestamp,
    }


def test_a_tenant_scoped_grafana_secret_needs_no_bearer_token(client, sender, settings):
    settings.CONTROLPLANE_GRAFANA_HMAC_SECRET = ""
    settings.CONTROLPLANE_GRAFANA_TENANT_SECRETS = {"acme/alertmanager": "acme-grafana-secret"}
    body = json.dumps(grafana_payload()).encode()
    response = client.post(
        f"{GRAFANA}?tenant=acme",
        body,
        content_type="application/json",
        **_tenant_signed("acme-grafana-secret", body),
    )
    assert response.status_code == 200, response.content
    signal = Signal.objects.get()
    assert (signal.tenant.slug, signal.source) == ("acme", "grafana/alertmanager")


@pytest.mark.parametrize(
    ("query", "secret", "code", "status"),
    [
        ("?tenant=acme", "someone-elses-secret", "SIGNAL_SOURCE_SIGNATURE_INVALID", 401),
        (
            "?tenant=globex",
            "acme-grafana-secret",
            "AUTH_REQUIRED",
            401,
        ),  # no secret for it: a token is needed
        ("", "acme-grafana-secret", "AUTH_REQUIRED", 401),
        ("?tenant=acme&stale=1", "acme-grafana-secret", "STALE_TIMESTAMP", 401),
    ],
)
def test_tenant_scoped_grafana_refusals_write_nothing(client, sender, settings, query, secret, code, status):
    settings.CONTROLPLANE_GRAFANA_TENANT_SECRETS = {"acme/alertmanager": "acme-grafana-secret"}
    body = json.dumps(grafana_payload()).encode()
    timestamp = str(int(time.time()) - 3600) if "stale" in query else None
    before = written()
    response = client.post(
        f"{GRAFANA}{query}", body, content_type="application/json", **_tenant_signed(secret, body, timestamp)
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert written() == before


def test_a_tenant_secret_whose_principal_lacks_the_capability_is_refused(client, tenant, settings):
    from tests.identity.factories import PrincipalFactory

    PrincipalFactory(tenant=tenant, name="reader", capabilities=["incidents.read"])
    settings.CONTROLPLANE_GRAFANA_TENANT_SECRETS = {"acme/reader": "acme-grafana-secret"}
    body = json.dumps(grafana_payload()).encode()
    before = written()
    response = client.post(
        f"{GRAFANA}?tenant=acme",
        body,
        content_type="application/json",
        **_tenant_signed("acme-grafana-secret", body),
    )
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert written() == before


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "SIGNAL_SOURCE_SIGNATURE_MISSING"),
        ("wrong-signature", "SIGNAL_SOURCE_SIGNATURE_INVALID"),
        ("body-signed-without-timestamp", "SIGNAL_SOURCE_SIGNATURE_INVALID"),
        ("stale", "STALE_TIMESTAMP"),
    ],
)
def test_grafana_signature_refusals_write_nothing(client, sender_token, settings, headers, code):
    secret = settings.CONTROLPLANE_GRAFANA_HMAC_SECRET = "s3cret-shared-with-grafana"
    body = json.dumps(grafana_payload()).encode()
    if headers == "wrong-signature":
        headers = {
            "HTTP_X_GRAFANA_ALERTING_SIGNATURE": "00" * 32,
            "HTTP_X_GRAFANA_ALERTING_SIGNATURE_TIMESTAMP": str(int(time.time())),
        }
    elif headers == "body-signed-without-timestamp":
        now = str(int(time.time()))
        headers = {
            "HTTP_X_GRAFANA_ALERTING_SIGNATURE": sign(secret, body),
            "HTTP_X_GRAFANA_ALERTING_SIGNATURE_TIMESTAMP": now,
        }
    elif headers == "stale":
        old = str(int(time.time()) - 3600)
        headers = {
            "HTTP_X_GRAFANA_ALERTING_SIGNATURE": sign(secret, body, old),
            "HTTP_X_GRAFANA_ALERTING_SIGNATURE_TIMESTAMP": old,
        }
    before = written()
    response = post(client, GRAFANA, body, sender_token, **headers)
    assert (response.status_code, response.json()["code"]) == (401, code)
    assert written() == before


def test_generic_signal_and_a_batch(client, sender_token):
    one = post(client, GENERIC, generic(severity="SEV1", labels={"region": "eu"}), sender_token)
    assert one.status_code == 201, one.content
    signal = Signal.objects.get()
    assert (signal.source, signal.source_kind, signal.severity, signal.severity_raw) == (
        "prometheus-eu",
        "generic",
        "critical",
        "SEV1",
    )
    batch = post(
        client, GENERIC, [generic(starts=at(1)), generic(starts=at(2), severity="bogus")], sender_token
    )
    assert batch.status_code == 201 and batch.json()["accepted"] == 2
    assert Signal.objects.get(starts_at=at(2)).severity == "medium"  # unknown: the table's default
    again = post(client, GENERIC, generic(severity="SEV1", labels={"region": "eu"}), sender_token)
    assert again.status_code == 200 and again.json()["duplicates"] == 1


def test_generic_batch_refuses_whole_delivery_naming_the_item(client, sender_token):
    before = written()
    bad = generic(starts=at(2))
    del bad["service"]
    response = post(client, GENERIC, [generic(starts=at(1)), bad], sender_token)
    assert (response.status_code, response.json()["field"]) == (400, "[1].service")
    assert written() == before
