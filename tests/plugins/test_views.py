"""The console's plugin pages: health (states, reasons, graph), one plugin (evidence, timeline), the review
queue (htmx, bulk decisions), release through the approval queue, the dashboard panel; both branches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest
from controlplane.policy import services as policy
from plugins.models import ReviewItem
from plugins.services import plugin_quarantine, plugins_supervise
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.plugins.support import register

pytestmark = pytest.mark.django_db

CAPS = ["console.view", "plugins.read", "plugins.review", "plugins.manage", "approvals.read"]


@pytest.fixture
def operator():
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="alice", human=True, capabilities=CAPS)


@pytest.fixture
def world():
    db = register("db")
    api = register("api", depends_on=[{"name": "db"}])
    bridge = register("bridge")
    now = timezone.now() + timedelta(seconds=1)  # after the registrations: evidence before one is not counted
    db.beat(at=now)
    api.beat(at=now)
    bridge.beat(at=now, checks={"slack": "degraded"})
    plugins_supervise(now=now + timedelta(seconds=1))
    return db, api, bridge


def test_health_page_and_fragment(client, operator, world):
    client.force_login(operator.user)
    html = client.get("/plugins/").content.decode()
    assert "<html" in html and 'data-plugin="db" data-state="healthy"' in html
    assert 'data-plugin="bridge" data-state="degraded"' in html and "PLUGIN_CHECK_DEGRADED" in html
    assert 'id="plugin-graph"' in html and "db: healthy" in html
    fragment = client.get("/plugins/", HTTP_HX_REQUEST="true")
    assert "<html" not in fragment.content.decode() and 'id="health"' in fragment.content.decode()
    assert fragment["Vary"].count("HX-Request") == 1


def test_detail_page_shows_evidence_and_the_timeline(client, operator, world):
    client.force_login(operator.user)
    html = client.get("/plugins/bridge/").content.decode()
    assert "<html" in html and "controlplane.plugin.transitioned" in html and "plugin-evidence" in html
    fragment = client.get("/plugins/bridge/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'id="detail"' in fragment
    missing = client.get("/plugins/nothing-here/")
    assert missing.status_code == 404 and b"PLUGIN_NOT_FOUND" in missing.content


def test_review_queue_bulk_decision_through_htmx(client, operator, world):
    client.force_login(operator.user)
    item = ReviewItem.objects.get()
    page = client.get("/plugins/reviews/").content.decode()
    assert "<html" in page and f'id="review-{item.pk}"' in page
    refused = client.post(
        "/plugins/reviews/decide/", {"item": [item.pk], "decision": "dismiss"}, HTTP_HX_REQUEST="true"
    )
    assert refused.status_code == 400 and b"VALIDATION_FAILED" in refused.content
    answer = client.post(
        "/plugins/reviews/decide/",
        {"item": [item.pk], "decision": "quarantine", "reason": "slack down for good"},
        HTTP_HX_REQUEST="true",
    )
    html = answer.content.decode()
    assert answer.status_code == 200 and "<html" not in html and "1 item quarantined." in html
    assert ReviewItem.objects.get().status == "quarantined"


def test_release_from_the_detail_page_opens_an_approval(client, operator, world):
    policy.profile_bootstrap(environment="dev")
    plugin_quarantine(name="db", actor=operator, reason="drill")
    client.force_login(operator.user)
    assert b"Ask for release" in client.get("/plugins/db/").content
    answer = client.post("/plugins/db/release/", {"reason": "drill over"})
    assert answer.status_code == 302 and answer["Location"].startswith("/approvals/")
    assert ApprovalRequest.objects.get().subject_kind == "plugins.release"


def test_a_reader_cannot_decide_and_the_dashboard_shows_the_panel(client, world):
    reader = PrincipalFactory(
        tenant=TenantFactory(slug="acme"),
        name="reader",
        human=True,
        capabilities=["console.view", "plugins.read"],
    )
    client.force_login(reader.user)
    item = ReviewItem.objects.get()
    refused = client.post(
        "/plugins/reviews/decide/", {"item": [item.pk], "decision": "dismiss", "reason": "x"}
    )
    assert refused.status_code == 403 and b"CAPABILITY_MISSING" in refused.content
    dashboard = client.get("/").content.decode()
    assert 'id="panel-plugins"' in dashboard and 'id="plugins-reviews">1<' in dashboard


def test_pages_need_plugins_read(client):
    nobody = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(nobody.user)
    assert client.get("/plugins/").status_code == 403
    client.logout()
    assert client.get("/plugins/").status_code == 302


def test_the_navigation_badge_counts_open_reviews_in_the_viewers_reach(client, operator, world):
    """The degraded bridge waits for review: the Plugins entry of the navigation fragment says 1."""
    client.force_login(operator.user)
    html = client.get("/nav/", HTTP_HX_REQUEST="true").content.decode()
    assert 'title="1 plugin degradations waiting for review"' in html
    other = PrincipalFactory(tenant=TenantFactory(slug="globex"), name="gus", human=True, capabilities=CAPS)
    client.force_login(other.user)
    assert (
        "plugin degradations waiting for review"
        not in client.get("/nav/", HTTP_HX_REQUEST="true").content.decode()
    )
