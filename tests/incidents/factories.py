"""Builders for the incidents tests: signals (generic and Alertmanager), rules, and incidents opened by
real ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.ledger.models import LedgerEvent
from incidents import services
from incidents.models import EvidenceBundle, Incident, Signal

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def am_alert(
    *,
    name: str = "HighErrorRate",
    service: str = "checkout",
    severity: str = "critical",
    status: str = "firing",
    starts: datetime = T0,
    ends: datetime | None = None,
    fingerprint: str | None = None,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One alert exactly as Alertmanager writes it in a version 4 webhook."""
    labels = {"alertname": name, "service": service, "severity": severity, **(extra_labels or {})}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{name} on {service}"},
        "startsAt": iso(starts),
        "endsAt": iso(ends) if ends else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=rate%28errors%5B5m%5D%29",
        "fingerprint": fingerprint or f"{abs(hash((name, service, iso(starts)))) % 16**16:016x}",
    }


def am_payload(*alerts: dict[str, Any], receiver: str = "control-plane") -> dict[str, Any]:
    """An Alertmanager webhook payload (version 4) around the alerts."""
    common = dict(alerts[0]["labels"]) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


def generic(
    *,
    name: str = "HighErrorRate",
    service: str = "checkout",
    severity: str = "critical",
    starts: datetime = T0,
    source: str = "prometheus-eu",
    fingerprint: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "source": source,
        "service": service,
        "name": name,
        "severity": severity,
        "starts_at": iso(starts),
        "fingerprint": fingerprint or f"fp-{name}-{service}-{iso(starts)}-{source}",
        **extra,
    }


def written() -> tuple[int, int, int, int]:
    """(ledger events, signals, evidence, incidents): what a refusal must leave unchanged."""
    return (
        LedgerEvent.objects.count(),
        Signal.objects.count(),
        EvidenceBundle.objects.count(),
        Incident.objects.count(),
    )


def make_rule(tenant, name: str = "checkout-errors", actor: Any = "test", **content: Any):
    defaults = {
        "match_service": "checkout",
        "match_name": "HighErrorRate",
        "threshold": 3,
        "window_seconds": 300,
        "severity": "high",
        "precision_bp": 8000,
    }
    return services.rule_version_create(
        tenant=tenant, name=name, content=services.RuleContent(**{**defaults, **content}), actor=actor
    )


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def open_incident(tenant, *, service: str = "checkout", start: float = 0) -> Incident:
    """Three critical signals 60 s apart: meets the `rule` fixture's threshold and promotes."""
    from incidents import normalise

    for index in range(3):
        signal = normalise.from_generic(generic(service=service, starts=at(start + index * 60)))
        services.signal_ingest(tenant=tenant, signals=[signal], actor="test")
    return Incident.objects.get(service=service, status="open")


def write_every_assignment_event(tenant) -> None:
    """An incident assigned, unassigned and noted: every event of `incidents.contracts` (the contract drift
    test validates them)."""
    from tests.identity.factories import PrincipalFactory

    person = PrincipalFactory(
        tenant=tenant, name="oncall-person", human=True, capabilities=["incidents.manage"]
    )
    make_rule(tenant, name="contracts-errors")
    incident = open_incident(tenant)
    services.incident_assign(incident=incident, actor=person, assignee=person, reason="mine")
    services.incident_assign(incident=incident, actor=person, assignee=None)
    services.incident_note_add(incident=incident, actor=person, text="a note")
