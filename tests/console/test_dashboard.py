"""The dashboard: the panels and navigation the apps register, each for the viewers holding its capability.

Each panel is a fragment of the dashboard and its own `/panels/<name>/` URL (htmx polls it); a viewer
lacking the panel's capability sees no panel and is refused on its URL. Query counts are pinned.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.kernel import navigation
from controlplane.runtime.models import Execution
from tests.console.flow import prod_step_draft, submit
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dev_policy")]

HTMX = {"HX-Request": "true"}
EVERYTHING = [
    "console.view",
    "ledger.read",
    "ledger.verify",
    "approvals.read",
    "approvals.decide",
    "executions.read",
    "incidents.read",
    "killswitch.manage",
]
PANEL_IDS = {
    "approvals": "panel-approvals",
    "incidents": "panel-incidents",
    "executions": "panel-executions",
    "integrity": "integrity",
    "recent-events": "recent-events",
    "ingest-rejections": "ingest-rejections",
}


@pytest.fixture
def oncall(acme):
    """acme/olga: on call, may open every page."""
    return PrincipalFactory(
        tenant=acme, name="olga", human=True, user__username="olga", capabilities=EVERYTHING
    )


@pytest.fixture
def oncall_client(client, oncall):
    client.force_login(oncall.user)
    return client


def echo_draft(goal: str) -> dict:
    """A low-risk plan: its step is cleared to run at once (and, with no worker here, stays running)."""
    return {"goal": goal, "steps": [{"key": "s0", "action": "noop.echo", "inputs": {"message": goal}}]}


def panel_ids(html: str) -> list[str]:
    return re.findall(r'<section [^>]*id="(panel-[a-z]+|integrity|recent-events|ingest-rejections)"', html)


def stat(html: str, stat_id: str) -> str:
    found = re.search(rf'id="{stat_id}">\s*<h3>[^<]*</h3>\s*<p class="stat-main">(?:<a [^>]*>)?(\d+)', html)
    return found.group(1) if found else ""


# --- Panels --------------------------------------------------------------------------------------------


def test_the_dashboard_shows_every_registered_panel_in_order(oncall_client):
    response = oncall_client.get("/")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert panel_ids(html) == [
        "panel-approvals",
        "panel-incidents",
        "panel-executions",
        "integrity",
        "recent-events",
        "ingest-rejections",
    ]


@pytest.mark.parametrize(
    "name", ["approvals", "incidents", "executions", "recent-events", "ingest-rejections"]
)
def test_each_panel_refreshes_itself_from_its_fragment_url_and_links_to_its_page(oncall_client, name):
    html = oncall_client.get("/").content.decode()
    head = re.search(rf'<section [^>]*id="{PANEL_IDS[name]}"[^>]*>', html, re.S).group(0)
    assert f'hx-get="/panels/{name}/"' in head and 'hx-trigger="every 15s"' in head

    fragment = oncall_client.get(f"/panels/{name}/", headers=HTMX)
    full = oncall_client.get(f"/panels/{name}/")

    assert fragment.status_code == full.status_code == 200
    assert b"<html" not in fragment.content and b"<html" in full.content
    assert fragment.content.lstrip().startswith(b"<section")
    assert f'id="{PANEL_IDS[name]}"'.encode() in fragment.content
    assert "HX-Request" in fragment["Vary"]


@pytest.mark.parametrize(
    "name, href",
    [("approvals", "/approvals/"), ("incidents", "/incidents/"), ("executions", "/executions/")],
)
def test_the_what_needs_me_panels_link_to_their_pages(oncall_client, name, href):
    fragment = oncall_client.get(f"/panels/{name}/", headers=HTMX).content.decode()
    assert f'<a href="{href}">' in fragment


def test_a_viewer_without_the_capability_sees_no_panel_and_is_refused_its_fragment(client, acme):
    viewer = PrincipalFactory(tenant=acme, human=True, capabilities=["console.view", "ledger.read"])
    client.force_login(viewer.user)

    html = client.get("/").content.decode()
    assert panel_ids(html) == ["integrity", "recent-events", "ingest-rejections"]
    assert "Approvals waiting" not in html

    for name, capability in [
        ("approvals", "approvals.read"),
        ("incidents", "incidents.read"),
        ("executions", "executions.read"),
    ]:
        response = client.get(f"/panels/{name}/", headers=HTMX)
        assert response.status_code == 403
        assert b'data-code="CAPABILITY_MISSING"' in response.content
        assert f"{viewer.ref} lacks &#x27;{capability}&#x27;".encode() in response.content
        assert response["HX-Retarget"] == "#notice"


def test_panel_urls_need_a_console_user_and_a_known_panel(oncall_client):
    assert Client().get("/panels/approvals/")["Location"] == "/login/?next=/panels/approvals/"
    response = oncall_client.get("/panels/nothing/")
    assert response.status_code == 404 and b'data-code="NOT_FOUND"' in response.content


def test_the_executions_panel_counts_running_waiting_and_recently_failed(
    oncall_client, agent, decider, django_capture_on_commit_callbacks
):
    for i in range(2):
        submit(agent, prod_step_draft(f"waits {i}"), f"w{i}")  # a prod step: waits for approval
    submit(agent, echo_draft("runs"), "r0")  # cleared at once; no worker runs it here
    rejected = submit(agent, prod_step_draft("rejected"), "x0")
    approvals.approval_decide(
        approval=ApprovalRequest.objects.get(summary__goal="rejected"),
        actor=decider,
        decision="reject",
        reason="not now",
        content_hash=ApprovalRequest.objects.get(summary__goal="rejected").content_hash,
    )
    old = submit(agent, prod_step_draft("failed long ago"), "x1")
    approvals.approval_decide(
        approval=ApprovalRequest.objects.get(summary__goal="failed long ago"),
        actor=decider,
        decision="reject",
        reason="not then",
        content_hash=ApprovalRequest.objects.get(summary__goal="failed long ago").content_hash,
    )
    Execution.objects.filter(intent=old).update(finished_at=timezone.now() - timedelta(hours=25))
    globex_bot = PrincipalFactory(
        tenant=TenantFactory(slug="globex"), agent=True, capabilities=["intents.submit"]
    )
    submit(globex_bot, prod_step_draft("theirs"), "g0")
    assert Execution.objects.get(intent=rejected).status == "failed"

    html = oncall_client.get("/panels/executions/", headers=HTMX).content.decode()

    assert (
        stat(html, "executions-running"),
        stat(html, "executions-waiting"),
        stat(html, "executions-failed"),
    ) == (
        "1",
        "2",
        "1",
    )
    assert 'href="/approvals/?kind=runtime.step"' in html
    assert 'href="/executions/?status=failed"' in html


def test_the_executions_panel_counts_what_the_kill_switch_holds(
    oncall_client, agent, django_capture_on_commit_callbacks
):
    from controlplane.runtime import services as runtime

    submit(agent, prod_step_draft("waits"), "w0")
    runtime.killswitch_set(scope="tenant", target="acme", engaged=True, reason="drill", actor="cli")
    for i in range(2):
        submit(agent, echo_draft(f"held {i}"), f"h{i}", django_capture_on_commit_callbacks)
    html = oncall_client.get("/panels/executions/", headers=HTMX).content.decode()
    assert (
        stat(html, "executions-running"),
        stat(html, "executions-waiting"),
        stat(html, "executions-held"),
    ) == ("0", "1", "2")


def test_the_dashboard_costs_a_bounded_number_of_queries(
    oncall_client, agent, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    for i in range(3):
        submit(agent, prod_step_draft(f"goal {i}", steps=2), f"k{i}", django_capture_on_commit_callbacks)
    # session, user, principal, grants; the kill switch banner; approvals by tier; incidents by severity
    # and state; executions; chain head, checkpoint, verification; recent events; ingest refusal producers;
    # the enforcement banner's rollback toggle (cached per process for a second)
    with django_assert_max_num_queries(14):
        small = oncall_client.get("/")
    for i in range(3, 20):
        submit(agent, prod_step_draft(f"goal {i}", steps=2), f"k{i}", django_capture_on_commit_callbacks)
    with django_assert_max_num_queries(14):
        large = oncall_client.get("/")
    assert small.status_code == large.status_code == 200


@pytest.mark.parametrize("name", ["approvals", "incidents", "executions"])
def test_a_panel_fragment_costs_one_query_after_the_principal(
    oncall_client, agent, django_capture_on_commit_callbacks, django_assert_max_num_queries, name
):
    for i in range(5):
        submit(agent, prod_step_draft(f"goal {i}"), f"k{i}", django_capture_on_commit_callbacks)
    with django_assert_max_num_queries(5):  # session, user, principal, grants; the panel's one read
        assert oncall_client.get(f"/panels/{name}/", headers=HTMX).status_code == 200


def test_panel_contexts_name_distinct_keys(rf, oncall):
    """The dashboard merges the panels' contexts into its own, so no two panels may share a key."""
    request = rf.get("/")
    request.console_principal = oncall
    request.console_capabilities = frozenset(EVERYTHING)
    seen: dict[str, str] = {}
    for panel in navigation.panels(capabilities=request.console_capabilities):
        for key in panel.context(request):
            assert key not in seen, f"{panel.name} and {seen[key]} both set {key!r}"
            seen[key] = panel.name


# --- Navigation ----------------------------------------------------------------------------------------


def nav_links(html: str) -> list[tuple[str, str, bool]]:
    nav = html[html.index('<nav class="nav"') : html.index("</nav>")]
    return [
        (href, label, bool(current))
        for href, current, label in re.findall(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav)
    ]


def test_navigation_shows_the_registered_pages_the_viewer_may_open(oncall_client, client, acme):
    assert nav_links(oncall_client.get("/").content.decode()) == [
        ("/", "Dashboard", True),
        ("/ledger/", "Ledger", False),
        ("/approvals/", "Approvals", False),
        ("/executions/", "Executions", False),
        ("/incidents/", "Incidents", False),
        ("/killswitch/", "Kill switch", False),
    ]
    reader = PrincipalFactory(tenant=acme, human=True, capabilities=["console.view", "approvals.read"])
    client.force_login(reader.user)
    assert nav_links(client.get("/approvals/").content.decode()) == [
        ("/", "Dashboard", False),
        ("/approvals/", "Approvals", True),
    ]


@pytest.mark.parametrize(
    "url, current",
    [("/ledger/", "Ledger"), ("/executions/", "Executions"), ("/incidents/signals/", "Incidents")],
)
def test_the_current_page_is_marked_in_the_navigation(oncall_client, url, current):
    links = nav_links(oncall_client.get(url).content.decode())
    assert [label for _, label, is_current in links if is_current] == [current]
