"""`manage.py demo`: load demo data idempotently (running it twice changes nothing the second time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane.channels import services as channels
from controlplane.channels.models import Producer
from controlplane.identity import services as identity
from controlplane.identity.models import PrincipalKind
from controlplane.ledger.models import Fidelity
from controlplane.ledger.services import checkpoint_create, ledger_append
from controlplane.ledger.verify import verification_record
from controlplane.policy.services import profile_bootstrap

TENANT = "acme"
# A short, plausible morning of events from the demo producer, marked `fidelity=demo` on the ledger.
DEMO_EVENTS = [
    ("com.example.deploy.started", "service/checkout", {"version": "2026.11.3", "by": "deploy-agent"}),
    ("com.example.deploy.finished", "service/checkout", {"version": "2026.11.3", "result": "success"}),
    ("com.example.alert.firing", "service/payments", {"alertname": "HighLatency", "severity": "warning"}),
    ("com.example.alert.resolved", "service/payments", {"alertname": "HighLatency", "severity": "warning"}),
    ("com.example.config.changed", "service/search", {"key": "replicas", "from": 3, "to": 5}),
]
DEMO_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Command(BaseCommand):
    help = "Load demo tenants, principals, a producer and a few demo events (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        profile_bootstrap(environment="dev", actor="demo")  # the shipped dev profile, activated and ledgered
        tenant = identity.tenant_create(slug=TENANT, name="Acme Corp", actor="demo")
        identity.ensure_principal_with_grants(
            tenant=tenant,
            name="oncall-alice",
            kind=PrincipalKind.HUMAN,
            capabilities=["console.view", "ledger.read", "ledger.verify", "approvals.decide"],
            actor="demo",
        )
        identity.ensure_principal_with_grants(
            tenant=tenant, name="deploy-agent", kind=PrincipalKind.AGENT, capabilities=[], actor="demo"
        )
        if not Producer.objects.filter(tenant=tenant, name="demo-monitoring").exists():
            channels.producer_create(tenant=tenant, name="demo-monitoring", actor="demo")
        for index, (event_type, subject, data) in enumerate(DEMO_EVENTS):
            ledger_append(
                type=event_type,
                subject=subject,
                data=data,
                tenant=TENANT,
                actor=f"{TENANT}/demo-monitoring",
                source="urn:demo:monitoring",
                time=DEMO_START + timedelta(minutes=7 * index),
                idempotency_key=f"demo:event:{index}",
                fidelity=Fidelity.DEMO,
            )
        checkpoint = checkpoint_create(actor="demo")
        result, _ = verification_record()
        self.stdout.write(
            f"demo data loaded: tenant {TENANT}, checkpoint at seq {checkpoint.seq}, "
            f"chain {'verified' if result.ok else 'FAILED ' + result.failure.code} ({result.count} events)"
        )
