"""Screenshots of the incidents pages for docs/console.md, called by tests/console/test_screenshots.py
(`make screenshots`): a board with incidents in several states, a detail, the signals and the silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from controlplane.identity.models import Principal
from controlplane.identity.services import grant_add
from incidents import normalise, services
from incidents.models import Incident

PAGES = ["incidents.png", "incident.png", "signals.png", "silences.png"]


def _signal(tenant, *, service: str, name: str, severity: str, starts: datetime, source: str, **labels: str):
    payload = {
        "source": source,
        "service": service,
        "name": name,
        "severity": severity,
        "starts_at": starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": {"env": "prod", **labels},
        "annotations": {"summary": f"{name} on {service}"},
        "generator_url": "http://prometheus.example:9090/graph?g0.expr=job%3Aerrors%3Arate5m",
    }
    return services.signal_ingest(
        tenant=tenant, signals=[normalise.from_generic(payload)], actor="alertmanager"
    )


def _demo(operator: Principal) -> Incident:
    """Incidents in several states, a silence that suppressed signals and one waiting for approval;
    returns the incident the detail shot shows."""
    tenant = operator.tenant
    now = datetime.now(UTC).replace(microsecond=0)
    rule = services.RuleContent
    services.rule_version_create(
        tenant=tenant,
        name="checkout-errors",
        content=rule(match_service="checkout", match_name="HighErrorRate", threshold=3, severity="high"),
        actor=operator,
    )
    services.rule_version_create(
        tenant=tenant,
        name="payments-latency",
        content=rule(match_service="payments", threshold=2, window_seconds=600, severity="critical"),
        actor=operator,
    )
    services.rule_version_create(
        tenant=tenant,
        name="search-saturation",
        content=rule(match_service="search", threshold=2, severity="medium", precision_bp=9000),
        actor=operator,
    )
    silence = services.silence_create(
        actor=operator,
        reason="reindexing, OPS-977",
        match_service="batch",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=3),
        at=now - timedelta(hours=1),
    )
    for n in range(3):
        _signal(
            tenant,
            service="batch",
            name="JobLagging",
            severity="warning",
            starts=now - timedelta(minutes=50 - n * 10),
            source="alertmanager/prod",
        )
    for n, source in enumerate(["alertmanager/prod", "grafana/eu", "alertmanager/prod", "grafana/eu"]):
        _signal(
            tenant,
            service="checkout",
            name="HighErrorRate",
            severity="critical" if n else "error",
            starts=now - timedelta(minutes=9 - n * 2),
            source=source,
            instance=f"10.0.0.{n + 1}:9090",
        )
    for n in range(3):
        _signal(
            tenant,
            service="payments",
            name="P99LatencyHigh",
            severity="P1",
            starts=now - timedelta(minutes=30 - n * 4),
            source="alertmanager/prod",
        )
    for n in range(2):
        _signal(
            tenant,
            service="search",
            name="QueueSaturated",
            severity="warning",
            starts=now - timedelta(hours=5, minutes=-n * 3),
            source="grafana/eu",
        )
    payments = Incident.objects.get(tenant=tenant, service="payments")
    services.incident_acknowledge(incident=payments, actor=operator, reason="looking")
    search = Incident.objects.get(tenant=tenant, service="search")
    services.incident_resolve(incident=search, actor=operator, reason="scaled the consumers to 12")
    services.silence_create(
        actor=operator,
        reason="card network maintenance window",
        match_service="payments",
        match_labels={"region": "eu-west-1"},
        starts_at=now + timedelta(hours=20),
        ends_at=now + timedelta(hours=22),
    )
    assert silence.suppressed_signals.count() == 3
    return Incident.objects.get(tenant=tenant, service="checkout")


def shoot_incidents(page, operator: Principal, out: Path) -> list[str]:
    """Write the incidents pages' screenshots into `out`; returns their file names."""
    for capability in ("incidents.read", "incidents.manage", "silences.manage", "approvals.read"):
        grant_add(principal=operator, capability=capability, actor="test")
    incident = _demo(operator)
    page.goto("/incidents/")
    page.wait_for_selector("#board .inc-card")
    page.screenshot(path=out / "incidents.png", full_page=True)
    page.goto(f"/incidents/{incident.pk}/")
    page.wait_for_selector("#timeline tbody tr")
    page.screenshot(path=out / "incident.png", full_page=True)
    page.goto("/incidents/signals/")
    page.wait_for_selector("#results tbody tr")
    page.screenshot(path=out / "signals.png", full_page=True)
    page.goto("/incidents/silences/")
    page.wait_for_selector("#silences-pending_approval tbody tr")
    page.screenshot(path=out / "silences.png", full_page=True)
    return PAGES
