"""A storm of signals sent concurrently (threads, each with its own database connection and transaction)
opens exactly one incident; every promoted bundle attaches to it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from controlplane.ledger.verify import verify_chain
from incidents import normalise, services
from incidents.models import EvidenceBundle, Incident, Signal
from incidents.replay import replay_incidents

from .conftest import at, generic, make_rule

THREADS = 8
SIGNALS = 40


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_storm_opens_exactly_one_incident(tenant):
    make_rule(tenant, threshold=3, window_seconds=600)
    start = threading.Barrier(THREADS)

    def deliver(worker: int) -> int:
        try:
            start.wait()
            accepted = 0
            for index in range(worker, SIGNALS, THREADS):
                payload = generic(starts=at(index), source=f"prom-{index % 3}", fingerprint=f"storm-{index}")
                result = services.signal_ingest(
                    tenant=tenant, signals=[normalise.from_generic(payload)], actor="storm"
                )
                accepted += len(result.signals) - len(result.duplicates)
                # Every alert is delivered twice, as Alertmanager retries do.
                services.signal_ingest(
                    tenant=tenant, signals=[normalise.from_generic(payload)], actor="storm"
                )
            return accepted
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        accepted = sum(pool.map(deliver, range(THREADS)))
    assert accepted == SIGNALS == Signal.objects.count()
    assert Incident.objects.count() == 1
    incident = Incident.objects.get()
    # Which signal closes which window depends on arrival order; what may not vary: every promoted
    # bundle belongs to the one incident, and nothing unpromoted does.
    promoted = EvidenceBundle.objects.filter(decision__decision="PROMOTE")
    assert promoted.count() > 1
    assert set(promoted.values_list("incident_id", flat=True)) == {incident.pk}
    assert (
        not EvidenceBundle.objects.filter(incident__isnull=False)
        .exclude(decision__decision="PROMOTE")
        .exists()
    )
    assert verify_chain().ok
    report = replay_incidents()
    assert report.ok, [str(d) for d in report.differences[:5]]
