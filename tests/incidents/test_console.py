"""The incidents console pages through the Django test client: access, both render branches, the board,
the detail (timeline, evidence, confidence, reasons, transitions), signals and silences.

Every refusal asserts the reason code shown and that nothing was written (ledger, incident, silences).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern
from django.utils import timezone

from approvals.models import ApprovalRequest
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Intent
from incidents import normalise, services, urls_console, views
from incidents.models import Incident, Silence
from incidents.services import lifecycle
from tests.identity.factories import PrincipalFactory, TenantFactory, UserFactory
from tests.incidents.factories import at, generic, make_rule

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
OPERATOR = [
    "console.view",
    "incidents.read",
    "incidents.manage",
    "silences.manage",
    "intents.submit",
    "ledger.read",
    "approvals.read",
]
REMEDIATION = {
    "goal": "roll back checkout",
    "context": {"ticket": "INC-7"},
    "steps": [{"key": "rollback", "action": "noop.echo", "inputs": {"message": "rollback"}}],
}


@pytest.fixture
def operator(tenant):
    """acme/olivia: on call, in the console."""
    return PrincipalFactory(
        tenant=tenant, name="olivia", human=True, user__username="olivia", capabilities=OPERATOR
    )


@pytest.fixture
def console(client, operator) -> Client:
    client.force_login(operator.user)
    return client


@pytest.fixture
def viewer_console(tenant) -> Client:
    """acme/vic may see incidents but change nothing."""
    viewer = PrincipalFactory(
        tenant=tenant,
        name="vic",
        human=True,
        user__username="vic",
        capabilities=["console.view", "incidents.read"],
    )
    client = Client()
    client.force_login(viewer.user)
    return client


def ingest(tenant, *payloads) -> services.IngestResult:
    return services.signal_ingest(
        tenant=tenant, signals=[normalise.from_generic(p) for p in payloads], actor="alertmanager"
    )


def open_incident(tenant, *, service: str = "checkout", start: float = 0) -> Incident:
    """Three critical signals a minute apart: the `rule` fixture (3 within 300 s) promotes at 0.66."""
    for index in range(3):
        ingest(tenant, generic(service=service, starts=at(start + index * 60)))
    return Incident.objects.get(tenant=tenant, service=service, status="open")


@pytest.fixture
def incident(tenant, rule) -> Incident:
    return open_incident(tenant)


def written(incident: Incident | None = None) -> tuple:
    """What a refusal must leave alone."""
    status = Incident.objects.get(pk=incident.pk).status if incident else None
    return (LedgerEvent.objects.count(), Intent.objects.count(), Silence.objects.count(), status)


def refusal_code(response) -> str:
    found = re.search(r'data-code="([A-Z_]+)"', response.content.decode())
    return found.group(1) if found else ""


def buttons(html: str) -> list[str]:
    """The labels of the submit buttons of the incident's actions panel."""
    actions = html[html.index('id="actions"') : html.index('id="timeline"')]
    return re.findall(r'<button type="submit"[^>]*>([^<]+)</button>', actions)


def transition(client, incident, verb, htmx=True, **data):
    headers = HTMX if htmx else {}
    return client.post(f"/incidents/{incident.pk}/{verb}/", data, headers=headers)


# --- Access ---------------------------------------------------------------------------------------------


def test_every_incidents_page_is_guarded_by_its_capability():
    guarded = {
        p.name: getattr(p.callback, "required_capabilities", None)
        for p in urls_console.urlpatterns
        if isinstance(p, URLPattern)
    }
    assert guarded == {
        "board": ("console.view", "incidents.read"),
        "signals": ("console.view", "incidents.read"),
        "silences": ("console.view", "incidents.read"),
        "silence-create": ("console.view", "silences.manage"),
        "silence-expire": ("console.view", "silences.manage"),
        "detail": ("console.view", "incidents.read"),
        "severity": ("console.view", "incidents.manage"),
        "assign": ("console.view", "incidents.manage"),
        "note": ("console.view", "incidents.manage"),
        "transition": ("console.view", "incidents.manage"),
    }


def test_the_buttons_ask_for_a_reason_exactly_where_the_service_requires_one():
    assert {verb: t.reason_required for verb, t in views.TRANSITIONS.items()} == {
        verb: spec[3] for verb, spec in lifecycle._TRANSITIONS.items()
    }


def _pages(incident) -> list[str]:
    return ["/incidents/", f"/incidents/{incident.pk}/", "/incidents/signals/", "/incidents/silences/"]


def test_anonymous_visitor_is_sent_to_sign_in(client, incident):
    for url in _pages(incident):
        response = client.get(url)
        assert (response.status_code, response["Location"]) == (302, f"/login/?next={url}")


def test_pages_are_refused_without_incidents_read(tenant, incident):
    someone = PrincipalFactory(
        tenant=tenant,
        name="ed",
        human=True,
        user__username="ed",
        capabilities=["console.view", "ledger.read"],
    )
    client = Client()
    client.force_login(someone.user)
    for url in _pages(incident):
        response = client.get(url)
        assert response.status_code == 403, url
        assert refusal_code(response) == "CAPABILITY_MISSING"
        assert "incidents.read" in response.content.decode()
    # ... and the navigation does not offer the link.
    assert 'href="/incidents/"' not in client.get("/").content.decode()


@pytest.mark.parametrize("page", ["board", "detail", "signals", "silences"])
def test_each_page_serves_the_whole_page_or_its_fragment(console, incident, page):
    url = {
        "board": "/incidents/",
        "detail": f"/incidents/{incident.pk}/",
        "signals": "/incidents/signals/",
        "silences": "/incidents/silences/",
    }[page]
    marker = {
        "board": 'id="board"',
        "detail": 'id="incident"',
        "signals": 'id="results"',
        "silences": 'id="silences"',
    }[page]
    full = console.get(url)
    assert full.status_code == 200
    assert "<html" in full.content.decode() and marker in full.content.decode()
    assert 'href="/incidents/" aria-current="page"' in full.content.decode()  # the nav marks the section
    fragment = console.get(url, headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode() and marker in fragment.content.decode()
    assert "HX-Request" in fragment["Vary"]


# --- Board ----------------------------------------------------------------------------------------------


def _column(html: str, status: str) -> str:
    start = html.index(f'id="col-{status}"')
    end = html.find('class="board-col ', start + 1)
    return html[start : end if end != -1 else len(html)]


def test_board_shows_incidents_by_state_and_polls_itself(console, tenant, incident, operator):
    make_rule(tenant, name="search-errors", match_service="search", severity="critical")
    other = open_incident(tenant, service="search", start=30)
    services.incident_acknowledge(incident=other, actor=operator)
    globex = TenantFactory(slug="globex")
    make_rule(globex, name="checkout-errors")
    open_incident(globex, service="checkout")

    html = console.get("/incidents/", headers=HTMX).content.decode()
    assert 'hx-trigger="every 5s"' in html
    assert f'data-incident="{incident.pk}"' in _column(html, "open")
    assert f'data-incident="{other.pk}"' in _column(html, "acknowledged")
    assert "checkout-errors: checkout" in _column(html, "open")
    assert f'data-incident="{other.pk}"' not in _column(html, "open")
    assert html.count("data-incident=") == 2  # globex's incident is not acme's business


def test_board_query_count_does_not_grow_with_incidents(console, tenant, rule, django_assert_max_num_queries):
    for n in range(4):
        make_rule(tenant, name=f"rule-{n}", match_service=f"svc-{n}")
        open_incident(tenant, service=f"svc-{n}", start=n)
    with django_assert_max_num_queries(6):  # session, user, principal + grants, two board queries
        response = console.get("/incidents/", headers=HTMX)
    assert response.content.decode().count("data-incident=") == 4


# --- Detail ---------------------------------------------------------------------------------------------


def test_detail_shows_timeline_evidence_confidence_reasons_and_the_allowed_transitions(console, incident):
    html = console.get(f"/incidents/{incident.pk}/").content.decode()
    # It refreshes itself every 10 s, unless the operator is typing or has the mitigation form open.
    assert f'hx-get="/incidents/{incident.pk}/" hx-swap="outerHTML"' in html
    assert "every 10s [!document.querySelector('#incident details[open]" in html
    events = list(
        LedgerEvent.objects.filter(
            type__in=[
                "controlplane.signal.received",
                "controlplane.evidence.assembled",
                "controlplane.confidence.assessed",
                "controlplane.promotion.decided",
                "controlplane.incident.opened",
            ]
        ).order_by("seq")
    )
    assert [e.type for e in events].count("controlplane.signal.received") == 3
    # The timeline: every event in seq order, each with its seq linked to the ledger page and its hash.
    rows = re.findall(r'<tr class="tl-\w+" data-type="([\w.]+)" data-seq="(\d+)">', html)
    assert rows == [(e.type, str(e.seq)) for e in events]
    for event in events:
        assert f'<a href="/ledger/{event.seq}/">{event.seq}</a>' in html
        assert f'title="{event.hash}"' in html
    # The confidence breakdown: each factor with its value and weight, the model version, the score.
    assessment = incident.evidence.get().assessment
    assert "model v1.0.0" in html
    for factor in assessment.factors:
        row = re.search(rf'<tr data-factor="{factor["name"]}">(.*?)</tr>', html).group(1)
        cells = re.findall(r'<td class="num">([^<]*)</td>', row)
        assert cells == [
            f"{factor['value_bp'] / 10000:.2f}",
            f"{factor['weight_bp'] / 10000:.2f}",
            f"{factor['contribution_bp'] / 10000:.4f}",
        ]
    assert f'<td class="num score">{assessment.score_bp / 10000:.2f}</td>' in html
    # Decision reasons with the catalogue's descriptions.
    assert '<code class="code">THRESHOLD_MET</code>' in html and "CONFIDENCE_MET" in html
    # The buttons of the transitions allowed from OPEN, and no others.
    assert buttons(html) == [
        "Acknowledge",
        "Start mitigating",
        "Resolve",
        "Assign to me",
        "Assign",
        "Raise severity",
        "Add note",
    ]
    assert 'aria-label="Reason to resolve" size="40" required' in html
    assert 'aria-label="Reason to acknowledge" size="40">' in html  # optional


def test_a_reader_sees_the_incident_but_no_buttons(viewer_console, incident):
    html = viewer_console.get(f"/incidents/{incident.pk}/").content.decode()
    assert 'id="timeline"' in html
    assert "needs the <code>incidents.manage</code> capability" in html
    assert buttons(html) == []
    # Without ledger.read the seqs are shown but not linked to a page the reader could not open.
    assert not re.search(r'href="/ledger/\d+/"', html)


def test_incident_of_another_tenant_is_not_found(console, tenant):
    globex = TenantFactory(slug="globex")
    make_rule(globex, name="checkout-errors")
    theirs = open_incident(globex)
    response = console.get(f"/incidents/{theirs.pk}/")
    assert (response.status_code, refusal_code(response)) == (404, "INCIDENT_NOT_FOUND")
    before = written(theirs)
    response = transition(console, theirs, "acknowledge")
    assert (response.status_code, refusal_code(response)) == (404, "INCIDENT_NOT_FOUND")
    assert written(theirs) == before


# --- Transitions ----------------------------------------------------------------------------------------


def test_acknowledge_then_resolve_then_close_through_the_console(console, incident, operator):
    response = transition(console, incident, "acknowledge")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'data-status="acknowledged"' in html
    assert 'id="changed">Incident acknowledged.' in html
    assert 'hx-swap-oob="true"' in html  # clears an earlier refusal from the notice area
    assert buttons(html) == [
        "Start mitigating",
        "Resolve",
        "Assign to me",
        "Assign",
        "Raise severity",
        "Add note",
    ]
    # Without htmx: post/redirect/get.
    response = transition(console, incident, "resolve", htmx=False, reason="rolled back the deploy")
    assert (response.status_code, response["Location"]) == (302, f"/incidents/{incident.pk}/")
    response = transition(console, incident, "close")
    assert 'data-status="closed"' in response.content.decode()

    events = LedgerEvent.objects.filter(subject=f"incident/{incident.pk}").order_by("seq")
    assert [(e.type, e.actor, e.data.get("reason")) for e in events] == [
        ("controlplane.incident.opened", "system", None),
        ("controlplane.incident.acknowledged", operator.ref, ""),
        ("controlplane.incident.resolved", operator.ref, "rolled back the deploy"),
        ("controlplane.incident.closed", operator.ref, ""),
    ]
    # The timeline shows each step.
    html = console.get(f"/incidents/{incident.pk}/").content.decode()
    for event in events:
        assert f'data-type="{event.type}" data-seq="{event.seq}"' in html
    assert "resolved → closed" in html and "acknowledged → resolved: rolled back the deploy" in html


@pytest.mark.parametrize(("verb", "data"), [("close", {}), ("reopen", {"reason": "it is back"})])
def test_an_illegal_transition_shows_its_code_and_writes_nothing(console, incident, verb, data):
    before = written(incident)
    response = transition(console, incident, verb, **data)
    assert response.status_code == 409
    assert refusal_code(response) == "INCIDENT_TRANSITION_NOT_ALLOWED"
    assert response["HX-Retarget"] == "#notice"  # shown in the notice area, the incident stays as it was
    assert "cannot be" in response.content.decode()
    assert written(incident) == before


def test_an_unknown_transition_or_incident_is_not_found(console, incident):
    before = written(incident)
    response = transition(console, incident, "escalate", reason="x")
    assert (response.status_code, refusal_code(response)) == (404, "NOT_FOUND")
    response = console.post("/incidents/no-such-incident/acknowledge/", headers=HTMX)
    assert (response.status_code, refusal_code(response)) == (404, "INCIDENT_NOT_FOUND")
    response = console.get("/incidents/no-such-incident/")
    assert (response.status_code, refusal_code(response)) == (404, "INCIDENT_NOT_FOUND")
    assert written(incident) == before


def test_a_reason_the_service_requires_is_refused_when_missing(console, incident):
    before = written(incident)
    response = transition(console, incident, "resolve", reason="   ")
    assert (response.status_code, refusal_code(response)) == (400, "INCIDENT_REASON_REQUIRED")
    assert written(incident) == before


def test_a_reader_cannot_transition(viewer_console, incident):
    before = written(incident)
    response = transition(viewer_console, incident, "acknowledge")
    assert (response.status_code, refusal_code(response)) == (403, "CAPABILITY_MISSING")
    assert written(incident) == before


def test_a_post_without_the_csrf_token_is_refused(operator, incident):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator.user)
    before = written(incident)
    response = transition(client, incident, "acknowledge", htmx=False)
    assert (response.status_code, refusal_code(response)) == (403, "CSRF_FAILED")
    assert written(incident) == before


def test_only_people_change_incidents(tenant, incident):
    bot = PrincipalFactory(
        tenant=tenant, name="bot", agent=True, user=UserFactory(username="bot"), capabilities=OPERATOR
    )
    client = Client()
    client.force_login(bot.user)
    before = written(incident)
    response = transition(client, incident, "acknowledge")
    assert (response.status_code, refusal_code(response)) == (403, "INCIDENT_ACTOR_NOT_HUMAN")
    assert written(incident) == before


def test_mitigate_links_an_existing_intent(console, incident, operator):
    from controlplane.runtime.services import intent_submit

    prepared = intent_submit(principal=operator, draft=REMEDIATION, idempotency_key="prepared-fix")
    html = console.get(f"/incidents/{incident.pk}/").content.decode()
    assert f'<option value="{prepared.pk}">roll back checkout' in html  # offered to pick
    response = transition(console, incident, "mitigate", reason="run the prepared fix", intent=prepared.pk)
    assert response.status_code == 200
    incident.refresh_from_db()
    assert (incident.status, incident.remediation_intent_id) == ("mitigating", prepared.pk)
    assert f'intent <span class="mono">{prepared.pk[:12]}…</span>' in response.content.decode()


def test_mitigate_submits_a_plan_draft_as_an_intent_of_the_person(console, incident, operator):
    import json

    response = transition(console, incident, "mitigate", reason="roll back", draft=json.dumps(REMEDIATION))
    assert response.status_code == 200, response.content
    intent = Intent.objects.get()
    incident.refresh_from_db()
    assert (incident.status, incident.remediation_intent_id) == ("mitigating", intent.pk)
    assert (intent.principal_id, intent.plan.goal) == (operator.pk, "roll back checkout")


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"reason": "try"}, 400, "INCIDENT_REMEDIATION_REQUIRED"),
        ({"reason": "try", "draft": "{not json"}, 400, "PLAN_INVALID"),
        ({"reason": "try", "draft": '["a list"]'}, 400, "PLAN_INVALID"),
        (
            {
                "reason": "try",
                "draft": '{"goal": "x", "steps": [{"key": "a", "action": "no.such", "inputs": {}}]}',
            },
            400,
            "PLAN_UNKNOWN_ACTION",
        ),
        ({"reason": "try", "intent": "0" * 64}, 404, "NOT_FOUND"),
        ({"reason": "", "intent": "0" * 64}, 400, "INCIDENT_REASON_REQUIRED"),
    ],
)
def test_a_refused_mitigation_shows_its_code_and_writes_nothing(console, incident, data, status, code):
    before = written(incident)
    response = transition(console, incident, "mitigate", **data)
    assert (response.status_code, refusal_code(response)) == (status, code)
    assert written(incident) == before


def test_raise_severity_up_with_a_reason_never_down(console, incident, operator):
    assert incident.severity == "high"
    html = console.get(f"/incidents/{incident.pk}/").content.decode()
    assert re.findall(r'<option value="(\w+)">\w+</option>', html.split('id="raise-severity"')[1])[:1] == [
        "critical"
    ]  # only higher severities are offered
    before = written(incident)
    down = console.post(
        f"/incidents/{incident.pk}/severity/", {"severity": "medium", "reason": "calm"}, headers=HTMX
    )
    assert (down.status_code, refusal_code(down)) == (409, "INCIDENT_SEVERITY_NOT_RAISED")
    no_reason = console.post(f"/incidents/{incident.pk}/severity/", {"severity": "critical"}, headers=HTMX)
    assert (no_reason.status_code, refusal_code(no_reason)) == (400, "INCIDENT_REASON_REQUIRED")
    bogus = console.post(f"/incidents/{incident.pk}/severity/", {"severity": "apocalyptic", "reason": "x"})
    assert (bogus.status_code, refusal_code(bogus)) == (400, "VALIDATION_FAILED")
    assert written(incident) == before
    up = console.post(
        f"/incidents/{incident.pk}/severity/",
        {"severity": "critical", "reason": "payments down"},
        headers=HTMX,
    )
    assert up.status_code == 200
    assert 'id="incident-severity">critical<' in up.content.decode()
    event = LedgerEvent.objects.get(type="controlplane.incident.severity.raised")
    assert (event.actor, event.data["from"], event.data["to"], event.data["reason"]) == (
        operator.ref,
        "high",
        "critical",
        "payments down",
    )


# --- Signals --------------------------------------------------------------------------------------------


def test_signals_show_what_was_suppressed_by_which_silence_and_dedup(console, tenant, rule, operator):
    now = timezone.now()
    silence = services.silence_create(
        actor=operator,
        reason="planned maintenance of search",
        match_service="search",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        at=now - timedelta(hours=1),
    )
    quiet = generic(service="search", starts=now - timedelta(minutes=5), severity="warning")
    ingest(tenant, quiet)
    ingest(tenant, quiet)  # a redelivery: stored once
    loud = generic(service="checkout", starts=now - timedelta(minutes=4), severity="P1")
    ingest(tenant, loud)

    html = console.get("/incidents/signals/").content.decode()
    assert html.count("<tr data-signal=") == 2
    suppressed_row = re.search(r'<tr data-signal="\w+" class="suppressed">(.*?)</tr>', html, re.S).group(1)
    assert f'href="/incidents/silences/#silence-{silence.pk}"' in suppressed_row
    assert "SUPPRESSED_BY_SILENCE" in suppressed_row and "planned maintenance of search" in suppressed_row
    assert "from “warning”" in suppressed_row  # normalised by the severity table
    assert "from “P1”" in html

    only = console.get("/incidents/signals/?suppressed=yes", headers=HTMX).content.decode()
    assert only.count("<tr data-signal=") == 1 and 'class="suppressed"' in only
    unsuppressed = console.get("/incidents/signals/?suppressed=no&service=checkout").content.decode()
    assert unsuppressed.count("<tr data-signal=") == 1 and 'class="suppressed"' not in unsuppressed
    by_silence = console.get(f"/incidents/signals/?silence={silence.pk}").content.decode()
    assert by_silence.count("<tr data-signal=") == 1 and 'class="suppressed"' in by_silence
    silences = console.get("/incidents/silences/").content.decode()
    assert f'<a href="/incidents/signals/?silence={silence.pk}">1</a>' in silences  # its suppressed count
    bad = console.get("/incidents/signals/?status=burning")
    assert (bad.status_code, refusal_code(bad)) == (400, "VALIDATION_FAILED")


def test_signals_link_the_evidence_and_incident_that_counted_them(console, incident):
    html = console.get("/incidents/signals/?service=checkout").content.decode()
    assert html.count(f'href="/incidents/{incident.pk}/"') == 3  # each of the three signals
    assert html.count("badge-decision-PROMOTE") == 3


def test_signals_page_by_fifty(console, tenant):
    for n in range(55):
        ingest(tenant, generic(service="batch", starts=at(n), fingerprint=f"fp-{n}"))
    first = console.get("/incidents/signals/?service=batch").content.decode()
    assert first.count("<tr data-signal=") == 50
    older = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert older == "/incidents/signals/?service=batch&page=2"
    assert console.get(older).content.decode().count("<tr data-signal=") == 5


# --- Silences -------------------------------------------------------------------------------------------


def _silence_post(client, htmx=True, **data):
    return client.post("/incidents/silences/create/", data, headers=HTMX if htmx else {})


def test_create_a_silence_of_a_quiet_service_active_at_once_then_expire_it(console, operator):
    response = _silence_post(
        console,
        match_service="batch",
        match_labels="env=prod, team = data",
        duration="3600",
        reason="reindex",
    )
    assert response.status_code == 200, response.content
    silence = Silence.objects.get()
    assert (silence.status, silence.match_service, silence.match_labels) == (
        "active",
        "batch",
        {"env": "prod", "team": "data"},
    )
    assert 3599 <= (silence.ends_at - silence.starts_at).total_seconds() <= 3600
    html = response.content.decode()
    assert f'<tr id="silence-{silence.pk}" data-silence="{silence.pk}" data-state="active">' in html
    assert LedgerEvent.objects.filter(type="controlplane.silence.created", actor=operator.ref).count() == 1

    response = console.post(
        f"/incidents/silences/{silence.pk}/expire/", {"reason": "done early"}, headers=HTMX
    )
    assert response.status_code == 200
    assert f'data-silence="{silence.pk}" data-state="expired"' in response.content.decode()
    silence.refresh_from_db()
    assert silence.status == "expired"

    before = written()
    again = console.post(f"/incidents/silences/{silence.pk}/expire/", {"reason": "twice"}, headers=HTMX)
    assert (again.status_code, refusal_code(again)) == (409, "SILENCE_NOT_ACTIVE")
    assert written() == before


def test_silencing_a_high_service_waits_for_approval_and_links_the_queue(console, rule):
    response = _silence_post(
        console,
        match_service="checkout",
        starts_at="2099-01-01T10:00",
        ends_at="2099-01-01T12:00",
        reason="deploy",
    )
    assert response.status_code == 200
    silence = Silence.objects.get()
    assert (silence.status, silence.criticality) == ("pending_approval", "high")
    assert silence.starts_at.isoformat() == "2099-01-01T10:00:00+00:00"  # the form's times are UTC
    request = ApprovalRequest.objects.get(subject_kind="incidents.silence", subject_id=silence.pk)
    html = response.content.decode()
    assert "it waits for approval" in html and f"(request {request.pk[:12]})" in html
    assert 'data-state="pending_approval"' in html
    assert 'href="/approvals/?kind=incidents.silence"' in html

    before = written()
    pending = console.post(f"/incidents/silences/{silence.pk}/expire/", {"reason": "no"}, headers=HTMX)
    assert (pending.status_code, refusal_code(pending)) == (409, "SILENCE_NOT_ACTIVE")
    assert written() == before


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"match_service": "batch", "duration": "3600"}, 400, "INCIDENT_REASON_REQUIRED"),
        ({"duration": "3600", "reason": "x"}, 400, "SILENCE_INVALID"),
        ({"match_labels": "env", "duration": "3600", "reason": "x"}, 400, "SILENCE_INVALID"),
        ({"match_service": "batch", "reason": "x"}, 400, "VALIDATION_FAILED"),
        (
            {"match_service": "batch", "duration": "3600", "ends_at": "2099-01-01T10:00", "reason": "x"},
            400,
            "VALIDATION_FAILED",
        ),
        ({"match_service": "batch", "ends_at": "2000-01-01T10:00", "reason": "x"}, 400, "SILENCE_INVALID"),
        (
            {
                "match_service": "batch",
                "starts_at": "2099-01-01T00:00",
                "ends_at": "2099-02-01T00:00",
                "reason": "x",
            },
            400,
            "SILENCE_TOO_LONG",
        ),
    ],
)
def test_a_refused_silence_shows_its_code_and_writes_nothing(console, data, status, code):
    before = written()
    response = _silence_post(console, **data)
    assert (response.status_code, refusal_code(response)) == (status, code)
    assert written() == before


def test_silence_management_needs_its_capability(viewer_console, tenant):
    html = viewer_console.get("/incidents/silences/").content.decode()
    assert 'id="silence-new"' not in html
    before = written()
    response = _silence_post(viewer_console, match_service="batch", duration="3600", reason="x")
    assert (response.status_code, refusal_code(response)) == (403, "CAPABILITY_MISSING")
    assert written() == before


def test_page_costs_do_not_grow_with_evidence_signals_or_silences(
    console, tenant, incident, operator, django_assert_num_queries
):
    """Session, user, principal and grants (4), plus a fixed number of reads per page."""
    # incident, evidence, timeline subjects, events, signals, resolved notifications of its alerts, notes,
    # intents, the people it may be assigned to; the changes panel (channels)
    with django_assert_num_queries(14):
        small = console.get(f"/incidents/{incident.pk}/", headers=HTMX)
    for n in range(3):
        ingest(tenant, generic(starts=at(200 + n * 60)))  # three more evidence bundles, attached
    services.silence_create(
        actor=operator, reason="x", match_service="batch", ends_at=timezone.now() + timedelta(hours=1)
    )
    assert incident.evidence.count() == 4
    with django_assert_num_queries(14):
        large = console.get(f"/incidents/{incident.pk}/", headers=HTMX)
    assert large.content.decode().count('class="panel panel-wide evidence"') == 4
    assert small.content.decode().count('class="panel panel-wide evidence"') == 1
    with django_assert_num_queries(8):  # count, page, evidence of the page, sources
        console.get("/incidents/signals/", headers=HTMX)
    with django_assert_num_queries(8):  # one per group: pending, running, ended, rejected
        console.get("/incidents/silences/", headers=HTMX)


def test_a_pending_silence_approved_in_the_queue_becomes_active(console, tenant, rule):
    approver = PrincipalFactory(
        tenant=tenant,
        name="dora",
        human=True,
        user__username="dora",
        capabilities=["console.view", "approvals.read", "approvals.decide"],
    )
    _silence_post(console, match_service="checkout", duration="3600", reason="deploy of checkout")
    silence = Silence.objects.get()
    request = ApprovalRequest.objects.get(subject_kind="incidents.silence", subject_id=silence.pk)
    queue = Client()
    queue.force_login(approver.user)
    assert f'id="req-{request.pk}"' in queue.get("/approvals/?kind=incidents.silence").content.decode()
    decided = queue.post(
        f"/approvals/{request.pk}/decide/",
        {"decision": "approve", "reason": "ok for the deploy", "content_hash": request.content_hash},
    )
    assert decided.status_code == 302
    silence.refresh_from_db()
    assert silence.status == "active"
    html = console.get("/incidents/silences/").content.decode()
    assert f'data-silence="{silence.pk}" data-state="active"' in html


# --- The dashboard's panel ------------------------------------------------------------------------------


def open_counts(html: str) -> dict[str, list[str]]:
    """severity -> the counts per state (open, acknowledged, mitigating) of the incidents panel."""
    return {
        severity: re.findall(r'<td class="num">(\d+)</td>', cells)
        for severity, cells in re.findall(r'<tr data-severity="([a-z]+)">(.*?)</tr>', html)
    }


def test_the_panel_counts_open_incidents_by_severity_and_state(console, tenant, incident, operator):
    make_rule(tenant, name="search-errors", match_service="search", severity="critical")
    acknowledged = open_incident(tenant, service="search", start=30)
    services.incident_acknowledge(incident=acknowledged, actor=operator)
    make_rule(tenant, name="cart-errors", match_service="cart")
    resolved = open_incident(tenant, service="cart", start=60)
    services.incident_resolve(incident=resolved, actor=operator, reason="fixed")
    make_rule(tenant, name="pay-errors", match_service="pay")
    raised = open_incident(tenant, service="pay", start=90)
    services.incident_raise_severity(incident=raised, actor=operator, severity="critical", reason="pager")
    globex = TenantFactory(slug="globex")
    make_rule(globex, name="checkout-errors")
    open_incident(globex, service="checkout")

    fragment = console.get("/panels/incidents/", headers=HTMX)
    full = console.get("/panels/incidents/")

    html = fragment.content.decode()
    assert b"<html" not in fragment.content and b"<html" in full.content
    assert '<th class="num">open</th><th class="num">acknowledged</th><th class="num">mitigating</th>' in html
    assert open_counts(html) == {"critical": ["1", "1", "0"], "high": ["1", "0", "0"]}
    assert '<td class="num" id="incidents-open" colspan="3">3</td>' in html
    assert '<a href="/incidents/">Board →</a>' in html


def test_the_panel_says_when_nothing_is_open(console):
    html = console.get("/panels/incidents/", headers=HTMX).content.decode()
    assert '<p class="muted" id="incidents-open">No open incidents.</p>' in html


def test_without_incidents_read_there_is_no_panel_and_its_fragment_is_refused(client, tenant, incident):
    viewer = PrincipalFactory(tenant=tenant, human=True, capabilities=["console.view"])
    client.force_login(viewer.user)
    assert b'id="panel-incidents"' not in client.get("/").content
    response = client.get("/panels/incidents/", headers=HTMX)
    assert response.status_code == 403 and refusal_code(response) == "CAPABILITY_MISSING"


def test_the_panel_costs_one_query(console, tenant, rule, django_assert_max_num_queries):
    for n in range(4):
        make_rule(tenant, name=f"rule-{n}", match_service=f"svc-{n}")
        open_incident(tenant, service=f"svc-{n}", start=n)
    with django_assert_max_num_queries(5):  # session, user, principal, grants; the counts
        response = console.get("/panels/incidents/", headers=HTMX)
    assert open_counts(response.content.decode()) == {"high": ["4", "0", "0"]}
