"""`manage.py demo`: load demo data idempotently (running it twice changes nothing the second time)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane.channels import services as channels
from controlplane.channels.models import Producer
from controlplane.identity import services as identity
from controlplane.identity.models import Principal, PrincipalKind, Tenant
from controlplane.kernel.shell import cli_actor
from controlplane.ledger.checkpoints import checkpoint_create
from controlplane.ledger.models import Fidelity
from controlplane.ledger.services import ledger_append
from controlplane.ledger.verify import verification_record
from controlplane.policy.services import profile_bootstrap
from controlplane.runtime.services import intent_submit
from incidents.normalise import format_time, from_alertmanager
from incidents.services.rules import RuleContent, rule_version_create
from incidents.services.signals import signal_ingest
from plugins.demo import plugins_demo
from skills.demo import skills_demo

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
    help = (
        "Load demo tenants, principals, a producer, demo events, an incident, a completed execution and "
        "a pending approval (idempotent)."
    )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        # the shipped dev profile, activated and ledgered
        profile_bootstrap(environment="dev", actor=cli_actor())
        tenant = identity.tenant_create(slug=TENANT, name="Acme Corp", actor=cli_actor())
        identity.principal_ensure(
            tenant=tenant,
            name="oncall-alice",
            kind=PrincipalKind.HUMAN,
            capabilities=["console.view", "ledger.read", "ledger.verify", "approvals.decide"],
            actor=cli_actor(),
        )
        agent = identity.principal_ensure(
            tenant=tenant,
            name="deploy-agent",
            kind=PrincipalKind.AGENT,
            capabilities=["intents.submit", "executions.read"],
            actor=cli_actor(),
        )
        if not Producer.objects.filter(tenant=tenant, name="demo-monitoring").exists():
            channels.producer_create(tenant=tenant, name="demo-monitoring", actor=cli_actor())
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
        _demo_incident(tenant)
        _demo_actions(agent)
        skills_demo(actor=cli_actor())  # one third-party skill installed, one refused (skills/demo.py)
        plugins_demo(tenant=tenant, actor=cli_actor())
        checkpoint = checkpoint_create(actor=cli_actor())
        result, _ = verification_record()
        self.stdout.write(
            f"demo data loaded: tenant {TENANT}, checkpoint at seq {checkpoint.seq}, "
            f"chain {'verified' if result.ok else 'FAILED ' + result.failure.code} ({result.count} events)"
        )


def _alert(instance: str, minutes: int) -> dict[str, Any]:
    """One firing alert as Alertmanager sends it (payload version 4)."""
    return {
        "status": "firing",
        "labels": {
            "alertname": "HighLatency",
            "service": "payments",
            "severity": "critical",
            "instance": instance,
        },
        "annotations": {"summary": f"p99 latency above 2 s on {instance}"},
        "startsAt": format_time(DEMO_START + timedelta(minutes=minutes)),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=latency",
        "fingerprint": hashlib.sha256(instance.encode()).hexdigest()[:16],
    }


def _demo_incident(tenant: Tenant) -> None:
    """A detection rule and two Alertmanager alerts that meet it: one OPEN incident on the board."""
    rule_version_create(
        tenant=tenant,
        name="payments-latency",
        content=RuleContent(
            match_service="payments",
            match_name="HighLatency",
            threshold=2,
            window_seconds=600,
            severity="high",
        ),
        actor=cli_actor(),
        reason="demo data",
    )
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "status": "firing",
        "receiver": "control-plane",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "service": "payments"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [_alert("payments-1:8080", 30), _alert("payments-2:8080", 32)],
    }
    signal_ingest(
        tenant=tenant, signals=from_alertmanager(payload, source="demo-alertmanager"), actor=cli_actor()
    )


def _demo_actions(agent: Principal) -> None:
    """An autonomous two-step plan that runs, and a production restart waiting for a person."""
    intent_submit(
        principal=agent,
        idempotency_key="demo:intent:warm-cache",
        draft={
            "goal": "Warm the checkout cache after the deploy",
            "steps": [
                {"key": "announce", "action": "noop.echo", "inputs": {"message": "warming cache"}},
                {
                    "key": "warm",
                    "action": "noop.echo",
                    "inputs": {"message": "cache warmed"},
                    "depends_on": ["announce"],
                },
            ],
            "context": {"ticket": "OPS-101"},
        },
    )
    intent_submit(
        principal=agent,
        idempotency_key="demo:intent:restart-payments",
        draft={
            "goal": "Restart payments in production to clear the latency",
            "steps": [
                {
                    "key": "restart",
                    "action": "noop.echo",
                    "inputs": {"message": "restart payments", "target": {"environment": "prod"}},
                }
            ],
            "context": {"incident": "payments-latency"},
        },
    )
