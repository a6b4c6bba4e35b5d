"""The incident detail page says what is happening, at a glance: the alerts first (annotations, the labels
that matter, generator and runbook links), how many still fire and how many resolved (with a hint to
resolve when all have cleared), who acknowledged it and when, the remediation's state in words, and the
severity in its evidence's words. Alert data is untrusted: markup and `javascript:` links sent in every
alert field are inert on every page that shows them."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client

from approvals import services as approvals
from approvals.models import ApprovalRequest
from incidents import services
from incidents.models import Incident, Signal
from incidents.selectors import http_url
from tests.console.flow import dev_policy, prod_step_draft  # noqa: F401  (a fixture)
from tests.identity.factories import PrincipalFactory
from tests.incidents.factories import T0, am_alert, am_payload, auth, iso, make_rule

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
AM = "/api/v1/signals/alertmanager/"
EVERY_READ = [
    "console.view",
    "incidents.read",
    "incidents.manage",
    "intents.submit",
    "ledger.read",
    "approvals.read",
    "executions.read",
]


@pytest.fixture
def olivia(tenant):
    return PrincipalFactory(
        tenant=tenant, name="olivia", human=True, user__username="olivia", capabilities=EVERY_READ
    )


@pytest.fixture
def console(client, olivia) -> Client:
    client.force_login(olivia.user)
    return client


def post(client, token, *alerts) -> dict:
    response = client.post(
        AM, json.dumps(am_payload(*alerts)), content_type="application/json", **auth(token)
    )
    assert response.status_code == 200, response.content
    return response.json()


def firing(n: int, **extra) -> dict:
    return am_alert(
        starts=T0 + timedelta(minutes=n),
        fingerprint=f"{n:016x}",
        extra_labels={"instance": f"10.0.0.{n}:9090", "job": "checkout-api"},
        **extra,
    )


def resolved(n: int) -> dict:
    alert = firing(n, status="resolved", ends=T0 + timedelta(minutes=10 + n))
    return alert


def detail(console, incident, **headers) -> str:
    response = console.get(f"/incidents/{incident.pk}/", headers=headers)
    assert response.status_code == 200
    return response.content.decode()


def test_the_alerts_come_first_with_annotations_key_labels_and_links(console, tenant, rule, sender_token):
    alerts = [firing(n) for n in range(3)]
    for alert in alerts:
        alert["annotations"]["description"] = "5xx above 5% for 5 minutes"
        alert["annotations"]["runbook_url"] = "https://runbooks.example/checkout-errors"
    post(console, sender_token, *alerts)
    incident = Incident.objects.get()
    for html in (detail(console, incident), detail(console, incident, **HTMX)):
        assert (
            html.index('id="alerts"')
            < html.index('id="summary"')
            < html.index('class="panel panel-wide evidence"')
        )
        cards = re.findall(r'<article class="alert alert-firing".*?</article>', html, re.S)
        assert len(cards) == 3
        first = cards[0]
        assert "HighErrorRate on checkout" in first and "5xx above 5% for 5 minutes" in first
        assert '<span class="muted small">instance</span> <span class="mono">10.0.0.0:9090</span>' in first
        assert '<span class="muted small">job</span> <span class="mono">checkout-api</span>' in first
        assert (
            '<a href="http://prometheus.example:9090/graph?g0.expr=rate%28errors%5B5m%5D%29" '
            'rel="noopener noreferrer" target="_blank" class="alert-generator">'
        ) in first
        assert (
            '<a href="https://runbooks.example/checkout-errors" rel="noopener noreferrer" target="_blank" '
            'class="alert-runbook">'
        ) in first
        assert (
            '<strong class="alerts-firing">3 firing</strong>, <span class="alerts-resolved">0 resolved</span>'
            in html
        )
        assert 'id="resolve-hint"' not in html


def test_firing_and_resolved_counts_and_a_hint_to_resolve_once_all_cleared(
    console, tenant, rule, sender_token
):
    post(console, sender_token, *(firing(n) for n in range(3)))
    incident = Incident.objects.get()
    post(console, sender_token, resolved(0), resolved(1))
    assert Signal.objects.filter(status="resolved").count() == 2
    html = detail(console, incident)
    assert (
        '<strong class="alerts-firing">1 firing</strong>, <span class="alerts-resolved">2 resolved</span>'
        in html
    )
    assert [m for m in re.findall(r'data-alert-status="(\w+)"', html)] == ["firing", "resolved", "resolved"]
    assert 'id="resolve-hint"' not in html
    post(console, sender_token, resolved(2))
    for html in (detail(console, incident), detail(console, incident, **HTMX)):
        assert "0 firing" in html and "3 resolved" in html
        assert 'id="resolve-hint"' in html and "Every alert of this incident has resolved (3 of 3)" in html
    # Once resolved, the hint has done its work.
    services.incident_resolve(
        incident=incident, actor=PrincipalFactory(tenant=tenant, human=True), reason="ok"
    )
    assert 'id="resolve-hint"' not in detail(console, incident)


def test_who_acknowledged_and_when_in_utc_in_the_header(console, incident, olivia):
    assert "not acknowledged" in detail(console, incident)
    response = console.post(f"/incidents/{incident.pk}/acknowledge/", {"reason": ""}, headers=HTMX)
    incident.refresh_from_db()
    html = response.content.decode()
    header = html[html.index('id="incident-who"') : html.index('id="summary"')]
    stamp = incident.acknowledged_at.strftime("%Y-%m-%d %H:%M:%S")
    assert f'acknowledged by <strong class="mono">acme/olivia</strong> at {stamp} UTC' in header


@pytest.mark.usefixtures("dev_policy")
def test_the_remediation_is_said_in_words_and_links_to_the_queue(console, tenant, incident, olivia):
    services.incident_mitigate(
        incident=incident, actor=olivia, reason="restart", remediation=prod_step_draft()
    )
    html = detail(console, incident)
    assert (
        '<span id="remediation-state" class="remediation-state"><a href="/approvals/">'
        "step s0 waiting for approval by 1 more</a></span>"
    ) in html
    request = ApprovalRequest.objects.get(status="pending")
    dora = PrincipalFactory(tenant=tenant, human=True, capabilities=["approvals.decide"])
    approvals.approval_decide(
        approval=request, actor=dora, decision="reject", reason="not now", content_hash=request.content_hash
    )
    html = detail(console, incident, **HTMX)
    assert (
        '<span id="remediation-state" class="remediation-state">failed at step s0 (APPROVAL_REJECTED)</span>'
    ) in html


def test_the_severity_is_said_in_its_evidences_words(console, incident):
    html = detail(console, incident)
    # The rule implies high; the signals said critical: the page says both, and which one counts.
    assert re.search(
        r'id="severity-words">high <span class="muted small">\(what rule checkout-errors v1 implies; '
        r"its signals said critical \(a rule sets the incident&#x27;s severity, not the alerts\)\)</span>",
        html,
    )


# --- Untrusted alert data -------------------------------------------------------------------------------

SCRIPT = '<script>alert("x")</script>'
IMG = '"><img src=x onerror=alert(1)>'


def test_markup_and_javascript_links_in_every_alert_field_are_inert_on_every_page(
    console, tenant, sender_token, olivia
):
    service = f"checkout{SCRIPT}"
    make_rule(tenant, name="hostile", match_service=service, match_name="", threshold=1, precision_bp=9000)

    def hostile(n: int, **change) -> dict:
        return {
            "status": "firing",
            "labels": {
                "alertname": f"Errors{IMG}",
                "service": service,
                "severity": f"critical{SCRIPT}",
                "instance": f"10.0.0.{n}{IMG}",
                "job": f"api{SCRIPT}",
                "team": IMG,
            },
            "annotations": {
                "summary": f"summary{SCRIPT}",
                "description": f"description{IMG}",
                "runbook_url": "javascript:alert(document.cookie)",
            },
            "startsAt": iso(T0 + timedelta(minutes=n)),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "JavaScript:alert(2)//http://prometheus.example/",
            "fingerprint": f"fp{n}{IMG}",
            **change,
        }

    post(console, sender_token, *(hostile(n) for n in range(3)))
    gone = hostile(0, status="resolved", endsAt=iso(T0 + timedelta(minutes=5)))
    gone["annotations"] = dict(gone["annotations"], runbook_url="data:text/html,<script>alert(3)</script>")
    post(console, sender_token, gone)
    incident = Incident.objects.get()
    seq = Signal.objects.order_by("seq").first().seq
    pages = [
        "/",
        "/panels/incidents/",
        "/incidents/",
        f"/incidents/{incident.pk}/",
        "/incidents/signals/",
        f"/ledger/{seq}/",
        "/ledger/",
    ]
    for path in pages:
        for headers in ({}, HTMX):
            html = console.get(path, headers=headers).content.decode()
            assert SCRIPT not in html and IMG not in html, path
            assert "<img src=x" not in html and not re.search(r"<script>alert", html), path
            # (the layout's own empty favicon, `href="data:,"`, is the one data: URL a page may carry)
            assert not re.search(r'(href|src)\s*=\s*"\s*(javascript:|data:(?!,"))', html, re.I), path
    page = console.get(f"/incidents/{incident.pk}/").content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page  # shown, as text
    assert "generator (not a web link):" in page and "runbook (not a web link):" in page


@pytest.mark.parametrize(
    ("value", "linked"),
    [
        ("https://grafana.example/d/1", True),
        ("http://prometheus.example:9090/graph", True),
        ("javascript:alert(1)", False),
        (" JAVASCRIPT:alert(1)", False),
        ("data:text/html,x", False),
        ("//evil.example/x", False),
        ("/relative/path", False),
        ("http:///no-host", False),
        ("vbscript:msgbox", False),
        ("", False),
    ],
)
def test_only_absolute_http_and_https_urls_become_links(value, linked):
    assert bool(http_url(value)) is linked
