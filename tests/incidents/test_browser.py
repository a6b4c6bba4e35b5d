"""The incident flow in a real browser: an Alertmanager webhook posted to the API becomes an incident on the
board (which refreshes itself); an operator acknowledges and resolves it; the timeline shows each step."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.ledger.models import LedgerEvent
from incidents import normalise, services, views
from incidents.models import Incident
from tests.browser import sign_in
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.incidents.factories import am_alert, am_payload, make_rule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

expect = pytest.importorskip("playwright.sync_api").expect


def post_alertmanager(base_url: str, token: str, payload: dict) -> dict:
    """What Alertmanager does: POST the webhook JSON with the configured bearer token."""
    request = urllib.request.Request(  # noqa: S310 (http to the live test server)
        f"{base_url}/api/v1/signals/alertmanager/",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200
        return json.loads(response.read())


def test_alertmanager_alerts_become_an_incident_an_operator_acknowledges_and_resolves(
    page,
    live_server,
    monkeypatch,
):
    monkeypatch.setattr(views, "BOARD_POLL_SECONDS", 1)
    monkeypatch.setattr(views, "DETAIL_POLL_SECONDS", 600)  # its own test below; here, no swap mid-check
    acme = TenantFactory(slug="acme")
    operator = PrincipalFactory(
        tenant=acme,
        name="alice",
        human=True,
        user__username="alice",
        capabilities=["console.view", "incidents.read", "incidents.manage", "ledger.read"],
    )
    alertmanager = PrincipalFactory(tenant=acme, name="alertmanager", capabilities=["signals.ingest"])
    # The detection rule, through its service: 3 HighErrorRate signals of checkout within 5 minutes.
    make_rule(acme, name="checkout-errors", actor=operator)

    sign_in(page)
    page.get_by_role("link", name="Incidents", exact=True).click()
    expect(page.locator("h1")).to_have_text("Incidents")
    expect(page.locator("#col-open")).to_contain_text("None.")
    page.evaluate("window.__stillHere = true")

    # Alertmanager sends one group of three firing alerts, a minute apart (two instances and a retry
    # of the first: stored once).
    now = datetime.now(UTC).replace(microsecond=0)
    alerts = [
        am_alert(
            starts=now - timedelta(minutes=3),
            fingerprint="a1f0c3d2e4b5a697",
            extra_labels={"instance": "10.0.0.1:9090"},
        ),
        am_alert(
            starts=now - timedelta(minutes=2),
            fingerprint="b2e1d4c3f5a6b708",
            extra_labels={"instance": "10.0.0.2:9090"},
        ),
        am_alert(
            starts=now - timedelta(minutes=1),
            fingerprint="c3d2e5f4a6b7c819",
            extra_labels={"instance": "10.0.0.3:9090"},
        ),
    ]
    token = token_for(alertmanager)
    answer = post_alertmanager(live_server.url, token, am_payload(*alerts))
    assert (answer["accepted"], answer["duplicates"], len(answer["incidents"])) == (3, 0, 1)
    retry = post_alertmanager(live_server.url, token, am_payload(alerts[0]))
    assert (retry["accepted"], retry["duplicates"]) == (0, 1)
    incident = Incident.objects.get()

    # The board refreshes itself: the incident appears in the Open column without a reload.
    card = page.locator(f'#col-open [data-incident="{incident.pk}"]')
    expect(card).to_be_visible(timeout=10_000)
    expect(card).to_contain_text("checkout-errors: checkout")
    expect(card.locator(".badge")).to_have_text("high")
    assert page.evaluate("window.__stillHere") is True

    # The detail: evidence with its confidence breakdown, and the timeline so far.
    card.click()
    expect(page).to_have_url(re.compile(rf"/incidents/{incident.pk}/$"))
    expect(page.locator("#incident-status")).to_have_text("open")
    expect(page.locator(".factors tbody tr")).to_have_count(5)
    timeline = page.locator("#timeline tbody tr")
    expect(timeline).to_have_count(7)  # 3 signals, evidence, confidence, promotion, opened

    # Acknowledge (no reason needed).
    page.evaluate("window.__stillHere = true")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#incident-status")).to_have_text("acknowledged")
    expect(page.locator("#changed")).to_have_text("Incident acknowledged.")
    expect(timeline).to_have_count(8)
    expect(timeline.last).to_contain_text("acknowledged")
    expect(timeline.last).to_contain_text("acme/alice")

    # A refusal is shown with its code, and nothing changes: mitigating with an intent that does not exist.
    page.get_by_text("Start mitigating…").click()
    page.get_by_label("Reason to mitigate").fill("roll back")
    page.get_by_label("Existing intent id").fill("0" * 64)
    page.locator("#mitigate").get_by_role("button", name="Start mitigating").click()
    expect(page.locator("#notice .refusal .code")).to_have_text("NOT_FOUND")
    expect(page.locator("#incident-status")).to_have_text("acknowledged")
    expect(timeline).to_have_count(8)

    # Resolve, with the reason the service requires; the earlier refusal is cleared.
    page.get_by_label("Reason to resolve").fill("rolled back release 2026.11.3")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#incident-status")).to_have_text("resolved")
    expect(page.locator("#notice")).to_be_empty()
    expect(timeline).to_have_count(9)
    expect(timeline.last).to_contain_text("acknowledged → resolved: rolled back release 2026.11.3")
    assert page.evaluate("window.__stillHere") is True

    # The timeline shows each step, in ledger order, each linked to its verified ledger event.
    steps = LedgerEvent.objects.filter(subject=f"incident/{incident.pk}").order_by("seq")
    assert [(e.type, e.actor) for e in steps] == [
        ("controlplane.incident.opened", "system"),
        ("controlplane.incident.acknowledged", operator.ref),
        ("controlplane.incident.resolved", operator.ref),
    ]
    types = [row.get_attribute("data-type") for row in timeline.all()]
    assert types == [
        "controlplane.signal.received",
        "controlplane.signal.received",
        "controlplane.signal.received",
        "controlplane.evidence.assembled",
        "controlplane.confidence.assessed",
        "controlplane.promotion.decided",
        "controlplane.incident.opened",
        "controlplane.incident.acknowledged",
        "controlplane.incident.resolved",
    ]
    resolved = steps.last()
    timeline.last.get_by_role("link", name=str(resolved.seq)).click()
    expect(page).to_have_url(re.compile(rf"/ledger/{resolved.seq}/$"))
    expect(page.locator("#event-verification")).to_have_text("verified")

    # Back on the board, the incident is in the Resolved column.
    page.goto("/incidents/")
    expect(page.locator(f'#col-resolved [data-incident="{incident.pk}"]')).to_be_visible()
    expect(page.locator("#col-open")).to_contain_text("None.")


def test_the_detail_refreshes_itself_but_not_under_a_half_typed_reason(page, live_server, monkeypatch):
    monkeypatch.setattr(views, "DETAIL_POLL_SECONDS", 1)
    acme = TenantFactory(slug="acme")
    PrincipalFactory(
        tenant=acme,
        name="alice",
        human=True,
        user__username="alice",
        capabilities=["console.view", "incidents.read", "incidents.manage"],
    )
    bob = PrincipalFactory(tenant=acme, name="bob", human=True, capabilities=["incidents.manage"])
    make_rule(acme, name="checkout-errors")
    now = datetime.now(UTC).replace(microsecond=0)
    services.signal_ingest(
        tenant=acme,
        signals=normalise.from_alertmanager(
            am_payload(*(am_alert(starts=now - timedelta(minutes=3 - n)) for n in range(3))), source="am"
        ),
        actor="alertmanager",
    )
    incident = Incident.objects.get()
    sign_in(page)
    page.goto(f"/incidents/{incident.pk}/")
    expect(page.locator("#incident-status")).to_have_text("open")

    # Bob acknowledges elsewhere: alice's page shows it by itself.
    services.incident_acknowledge(incident=incident, actor=bob)
    expect(page.locator("#incident-status")).to_have_text("acknowledged", timeout=10_000)
    expect(page.locator("#timeline tbody tr").last).to_contain_text("acme/bob")

    # While alice types a reason, the page holds still (her text survives several polling periods) ...
    page.get_by_label("Reason to resolve").fill("rolled back")
    page.locator("h1").click()  # focus leaves the form; only the typed text holds the refresh
    services.incident_resolve(incident=incident, actor=bob, reason="bob fixed it")
    page.wait_for_timeout(3_000)
    expect(page.locator("#incident-status")).to_have_text("acknowledged")
    expect(page.get_by_label("Reason to resolve")).to_have_value("rolled back")
    # ... and refreshes once the field is empty again.
    page.get_by_label("Reason to resolve").fill("")
    page.locator("h1").click()
    expect(page.locator("#incident-status")).to_have_text("resolved", timeout=10_000)


def _on_call(acme, name: str, **extra):
    return PrincipalFactory(
        tenant=acme,
        name=name,
        human=True,
        user__username=name,
        capabilities=["console.view", "incidents.read", "incidents.manage", "ledger.read"],
        **extra,
    )


def _alerts(now: datetime, status: str = "firing") -> list[dict]:
    """Three alerts of checkout, on three instances, as Alertmanager sends them: firing, or resolved."""
    alerts = []
    for n in range(3):
        alert = am_alert(
            starts=now - timedelta(minutes=3 - n),
            fingerprint=f"{n + 10:016x}",
            status=status,
            ends=now + timedelta(minutes=1) if status == "resolved" else None,
            extra_labels={"instance": f"10.0.0.{n}:9090", "job": "checkout-api"},
        )
        alert["annotations"]["description"] = "5xx above 5% for 5 minutes"
        alert["annotations"]["runbook_url"] = "https://runbooks.example/checkout-errors"
        alerts.append(alert)
    return alerts


def test_an_incident_with_firing_then_resolved_alerts_says_so_and_fits_the_window(
    page, live_server, monkeypatch
):
    monkeypatch.setattr(views, "DETAIL_POLL_SECONDS", 1)
    acme = TenantFactory(slug="acme")
    _on_call(acme, "alice")
    token = token_for(PrincipalFactory(tenant=acme, name="alertmanager", capabilities=["signals.ingest"]))
    make_rule(acme, name="checkout-errors")
    now = datetime.now(UTC).replace(microsecond=0)
    firing = _alerts(now)
    post_alertmanager(live_server.url, token, am_payload(*firing))
    incident = Incident.objects.get()

    sign_in(page)
    expect(page.locator('#cp-nav a[href="/incidents/"] .nav-badge')).to_have_text("1")
    page.goto(f"/incidents/{incident.pk}/")
    alerts = page.locator("#alerts article.alert")
    expect(alerts).to_have_count(3)
    expect(page.locator("#alert-counts")).to_have_text("3 firing, 0 resolved")
    first = alerts.first
    expect(first).to_contain_text("HighErrorRate on checkout")
    expect(first).to_contain_text("5xx above 5% for 5 minutes")
    expect(first).to_contain_text("instance 10.0.0.0:9090")
    expect(first).to_contain_text("job checkout-api")
    assert first.locator("a.alert-runbook").get_attribute("rel") == "noopener noreferrer"
    assert (
        first.locator("a.alert-generator").get_attribute("href").startswith("http://prometheus.example:9090/")
    )
    # The page fits a 1,400 px window: nothing scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400

    # Two alerts resolve: the page refreshes itself with the counts; no hint while one still fires.
    post_alertmanager(live_server.url, token, am_payload(*_alerts(now, "resolved")[:2]))
    expect(page.locator("#alert-counts")).to_have_text("1 firing, 2 resolved", timeout=10_000)
    expect(page.locator("#resolve-hint")).to_have_count(0)
    expect(alerts.first).to_have_attribute("data-alert-status", "firing")
    # The last one resolves: a hint to resolve the incident.
    post_alertmanager(live_server.url, token, am_payload(_alerts(now, "resolved")[2]))
    expect(page.locator("#alert-counts")).to_have_text("0 firing, 3 resolved", timeout=10_000)
    expect(page.locator("#resolve-hint")).to_contain_text(
        "Every alert of this incident has resolved (3 of 3)"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400


def test_assign_to_me_hand_over_and_write_notes(page, live_server, monkeypatch):
    monkeypatch.setattr(views, "DETAIL_POLL_SECONDS", 600)  # no swap mid-check
    acme = TenantFactory(slug="acme")
    alice = _on_call(acme, "alice")
    _on_call(acme, "bob")
    make_rule(acme, name="checkout-errors")
    services.signal_ingest(
        tenant=acme,
        signals=normalise.from_alertmanager(
            am_payload(*_alerts(datetime.now(UTC).replace(microsecond=0))), source="am"
        ),
        actor="alertmanager",
    )
    incident = Incident.objects.get()
    sign_in(page)
    page.goto(f"/incidents/{incident.pk}/")
    page.evaluate("window.__stillHere = true")
    expect(page.locator("#incident-assignee")).to_have_text("assigned to nobody")

    page.get_by_role("button", name="Assign to me").click()
    expect(page.locator("#changed")).to_have_text("Incident assigned to acme/alice.")
    expect(page.locator("#incident-assignee")).to_contain_text("assigned to acme/alice since")
    expect(page.get_by_role("button", name="Assign to me")).to_have_count(0)

    # An empty note: the browser asks for text, nothing is sent.
    page.get_by_role("button", name="Add note").click()
    assert page.get_by_label("Note").evaluate("e => e.validity.valueMissing") is True
    page.get_by_label("Note").fill("restarted pod 3, no change; handing over to bob")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#changed")).to_contain_text("Note added")
    notes = page.locator("#notes li.note")
    expect(notes).to_have_count(1)
    expect(notes.first).to_contain_text("acme/alice")
    expect(notes.first).to_contain_text("restarted pod 3, no change; handing over to bob")

    page.get_by_label("Assignee").select_option("bob")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator("#changed")).to_have_text("Incident assigned to acme/bob.")
    expect(page.locator("#incident-assignee")).to_contain_text("assigned to acme/bob")
    timeline = page.locator("#timeline tbody tr")
    expect(timeline.nth(-3)).to_contain_text("to acme/alice (was nobody)")
    expect(timeline.nth(-2)).to_contain_text("restarted pod 3")
    expect(timeline.last).to_contain_text("to acme/bob (was acme/alice)")
    assert page.evaluate("window.__stillHere") is True
    events = LedgerEvent.objects.filter(subject=f"incident/{incident.pk}").order_by("seq")
    assert [(e.type, e.actor) for e in events][1:] == [
        ("controlplane.incident.assigned", alice.ref),
        ("controlplane.incident.note.added", alice.ref),
        ("controlplane.incident.assigned", alice.ref),
    ]
