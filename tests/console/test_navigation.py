"""Navigation that shows what needs the viewer (badges with counts, by capability and tenant, refreshed
by htmx from `/nav/`), and refusal pages with a way back (kernel `refusal_response`)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from controlplane.kernel import navigation
from tests.approvals.test_views import open_test_request
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.incidents.factories import make_rule, open_incident

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/incidents/"}
EVERYTHING = ["console.view", "approvals.read", "incidents.read", "executions.read", "ledger.read"]


def signed_in(tenant, capabilities, name="nina") -> Client:
    person = PrincipalFactory(
        tenant=tenant, name=name, human=True, user__username=name, capabilities=capabilities
    )
    client = Client()
    client.force_login(person.user)
    return client


def badges(html: str) -> dict[str, str]:
    """{link label: badge count} of the navigation bar."""
    nav = html[html.index('id="cp-nav"') : html.index("</nav>", html.index('id="cp-nav"'))]
    return dict(re.findall(r'<a href="[^"]*"[^>]*>([^<]+?) <span class="nav-badge" data-count="(\d+)"', nav))


@pytest.fixture
def acme(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def waiting(acme):
    """acme: two pending approvals and one open incident; globex: one of each, which acme never counts."""
    agent = PrincipalFactory(tenant=acme, agent=True)
    open_test_request(agent, n=1)
    open_test_request(agent, n=2)
    make_rule(acme)
    open_incident(acme)
    globex = TenantFactory(slug="globex")
    open_test_request(PrincipalFactory(tenant=globex, agent=True), n=3)
    make_rule(globex, match_service="search")
    open_incident(globex, service="search")  # (the factory finds its incident by service)


def test_pages_render_the_bar_without_counts_and_load_them_by_htmx(acme, waiting):
    client = signed_in(acme, EVERYTHING)
    html = client.get("/incidents/").content.decode()
    assert badges(html) == {}  # no count query on every page ...
    assert (
        'hx-get="/nav/"' in html and 'hx-trigger="load delay:200ms, every 30s"' in html
    )  # ... fetched after


def test_the_badges_fragment_counts_what_waits_for_the_viewer_in_its_tenant(acme, waiting):
    client = signed_in(acme, EVERYTHING)
    response = client.get("/nav/", headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and html.lstrip().startswith("<nav")
    assert badges(html) == {"Approvals": "2", "Incidents": "1"}
    assert 'title="2 pending approvals"' in html and 'title="1 open incidents"' in html
    # The fragment refreshes itself (no load trigger: it would fetch itself again at once).
    assert 'hx-trigger="every 30s"' in html
    # The page it sits on (HX-Current-URL) stays marked.
    assert re.search(r'<a href="/incidents/" aria-current="page"', html)
    assert response["Vary"] == "HX-Request, Cookie"


def test_the_whole_page_lists_the_same_counts(acme, waiting):
    html = signed_in(acme, EVERYTHING).get("/nav/").content.decode()
    assert "<html" in html and "What needs you" in html
    assert re.search(r'<tr data-nav="/approvals/">.*?<td class="num">2 <span', html, re.S)
    assert re.search(r'<tr data-nav="/incidents/">.*?<td class="num">1 <span', html, re.S)


def test_badges_respect_the_viewers_capabilities(acme, waiting, django_assert_num_queries):
    client = signed_in(acme, ["console.view", "incidents.read"], name="ivy")
    client.get("/nav/", headers=HTMX)  # warm the session
    # session, user, principal, grants; the open-incident count; nothing for approvals it may not read
    with django_assert_num_queries(5):
        html = client.get("/nav/", headers=HTMX).content.decode()
    assert badges(html) == {"Incidents": "1"} and "/approvals/" not in html


def test_nothing_waiting_shows_no_badge(acme):
    html = signed_in(acme, EVERYTHING).get("/nav/", headers=HTMX).content.decode()
    assert badges(html) == {} and "nav-badge" not in html


def test_an_app_registers_a_count_with_its_navigation_entry():
    entries = {e.url_name: e for e in navigation.nav_entries(capabilities=frozenset(EVERYTHING))}
    assert entries["approvals:queue"].count is not None and entries["incidents:board"].count is not None
    assert entries["console:ledger"].count is None  # an entry without a count has no badge
    assert navigation.nav_counts(None, capabilities=frozenset()) == {}  # nobody sees anything: no call


def test_the_badges_need_a_signed_in_console_user(client):
    response = client.get("/nav/", headers=HTMX)
    assert response.status_code == 200 and response["HX-Redirect"].startswith("/login/")


# --- Refusal pages have a way back ----------------------------------------------------------------------


def test_a_refusal_page_links_back_to_where_you_came_from_and_to_the_list(acme):
    client = signed_in(acme, EVERYTHING)
    response = client.get(
        "/incidents/" + "0" * 64 + "/", headers={"Referer": "http://testserver/incidents/?x=1"}
    )
    html = response.content.decode()
    assert response.status_code == 404 and 'data-code="INCIDENT_NOT_FOUND"' in html
    assert '<a href="/incidents/?x=1" class="btn btn-quiet">← Back to where you came from</a>' in html
    assert '<a href="/incidents/" class="btn btn-quiet">Back to the list</a>' in html


def test_a_refusal_page_without_a_referer_links_to_its_apps_list(acme):
    html = signed_in(acme, EVERYTHING).get("/approvals/?tier=nope").content.decode()
    assert 'data-code="VALIDATION_FAILED"' in html
    assert re.findall(r'<nav class="way-back".*?</nav>', html, re.S) == [
        '<nav class="way-back" aria-label="Way back">\n  <a href="/approvals/" class="btn btn-quiet">'
        "Back to the list</a>\n</nav>"
    ]


def test_another_sites_referer_is_not_a_way_back(acme):
    client = signed_in(acme, EVERYTHING)
    html = client.get("/ledger/999999/", headers={"Referer": "https://evil.example/phish"}).content.decode()
    assert "evil.example" not in html
    assert (
        '<a href="/" class="btn btn-quiet">Back to the list</a>' in html
    )  # the ledger's list: the dashboard


def test_a_page_refused_for_a_missing_capability_offers_only_what_the_viewer_may_open(acme):
    client = signed_in(acme, ["console.view"], name="newbie")
    html = client.get("/incidents/").content.decode()
    assert 'data-code="CAPABILITY_MISSING"' in html
    assert 'href="/incidents/" class="btn' not in html  # the list it may not open is not offered
    assert '<a href="/" class="btn btn-quiet">Dashboard</a>' in html


def test_a_refused_fragment_has_no_way_back_it_stays_on_its_page(acme):
    response = signed_in(acme, EVERYTHING).get("/incidents/" + "0" * 64 + "/", headers=HTMX)
    assert response["HX-Retarget"] == "#notice" and b"way-back" not in response.content


def test_a_user_without_a_principal_has_no_badges_to_fetch(client):
    from tests.identity.factories import UserFactory

    client.force_login(UserFactory())
    html = client.get("/").content.decode()
    assert 'data-code="AUTH_NO_PRINCIPAL"' in html and 'hx-get="/nav/"' not in html
