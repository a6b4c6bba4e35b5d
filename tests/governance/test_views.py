"""The governance console page, the dashboard's drift panel and the rolled-back banner."""

from __future__ import annotations

import pytest

from controlplane.kernel import charts
from controlplane.kernel import governance as kernel
from governance import services
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer():
    return PrincipalFactory(
        human=True, tenant=TenantFactory(slug="acme"), capabilities=["console.view", "governance.read"]
    )


def test_the_page_and_its_fragment_show_matrix_metrics_and_charts(client, viewer, settings):
    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    kernel.gate("envelope", "TELEMETRY_NONCANONICAL", tenant="acme")
    services.governance_validate(actor="test")
    client.force_login(viewer.user)
    page = client.get("/governance/")
    html = page.content.decode()
    assert page.status_code == 200 and "<html" in html
    assert 'data-dimension="envelope"' in html and 'data-dimension="signing"' in html
    assert 'data-code="TELEMETRY_NONCANONICAL"' in html and "<svg" in html
    assert 'data-enforcement="warn"' in html and 'id="enforcement-banner"' in html
    assert 'id="last-validation"' in html and "badge-ok" in html
    fragment = client.get("/governance/", HTTP_HX_REQUEST="true")
    assert "<html" not in fragment.content.decode() and 'id="governance"' in fragment.content.decode()
    assert "HX-Request" in fragment["Vary"]


def test_the_page_needs_governance_read(client):
    nobody = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(nobody.user)
    assert client.get("/governance/").status_code == 403
    client.logout()
    assert client.get("/governance/").status_code == 302


def test_a_tenant_sees_only_its_own_counts(client, viewer, settings):
    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    kernel.gate("envelope", "TELEMETRY_NONCANONICAL", tenant="globex")
    client.force_login(viewer.user)
    html = client.get("/governance/").content.decode()
    assert "globex" not in html and 'data-code="TELEMETRY_NONCANONICAL"' not in html


def test_the_dashboard_panel_shows_drift_from_the_ledger_and_the_mode(client, viewer, settings):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"prod": {"envelope": "warn"}}
    services.governance_validate(actor="test")
    client.force_login(viewer.user)
    panel = client.get("/panels/governance/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="governance-drift">1<' in panel and 'data-enforcement="enforce"' in panel
    dashboard = client.get("/").content.decode()
    assert 'id="panel-governance"' in dashboard


def test_no_banner_while_enforcing(client, viewer):
    client.force_login(viewer.user)
    assert 'id="enforcement-banner"' not in client.get("/governance/").content.decode()


def test_chart_labels_are_escaped():
    svg = str(charts.bars([("<script>", {"n": 1})], keys=("n",), title="t"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
