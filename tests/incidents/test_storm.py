"""An alert storm as Alertmanager delivers it: grouped webhooks of many alerts for the same services, sent
concurrently (threads, each with its own connection and transaction), with redeliveries, alerts repeated
across groups (HA peers), resolutions and an unattributed alert mixed in. Exactly one incident per service,
every signal stored once with one event, the chain verifies and replay re-derives every decision."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from incidents import normalise, services
from incidents.models import Incident, Signal
from incidents.replay import replay_incidents
from tests.incidents.factories import am_alert, am_payload, at, make_rule

SERVICES = [f"svc-{n}" for n in range(4)]
DELIVERIES = 12
GROUP = 25
THREADS = 6


def _alert(n: int, *, resolved: bool = False) -> dict:
    service = SERVICES[n % len(SERVICES)]
    alert = am_alert(
        service=service,
        severity="critical",
        starts=at(n),
        fingerprint=f"{n:016x}",
        status="resolved" if resolved else "firing",
        ends=at(n + 30) if resolved else None,
        extra_labels={"instance": f"10.0.{n % 7}.1:9100"},
    )
    if n % 97 == 13:  # now and then an alert that names no service: stored unattributed, never refused
        alert["labels"].pop("service")
    return alert


@pytest.mark.django_db(transaction=True)
def test_concurrent_grouped_deliveries_open_one_incident_per_service_and_store_every_signal_once(tenant):
    make_rule(tenant, name="any-errors", match_service="", threshold=3, window_seconds=3600)
    chooser = random.Random(17)
    universe = 160
    deliveries = []
    for _ in range(DELIVERIES):
        picked = chooser.sample(range(universe), GROUP)  # groups overlap: the same alert in several
        deliveries.append([_alert(n, resolved=n % 11 == 0 and chooser.random() < 0.5) for n in picked])
    deliveries += deliveries[:3]  # Alertmanager's retries of whole deliveries
    start = threading.Barrier(THREADS)
    expected = {
        normalise.signal_id(tenant=tenant.slug, signal=s)
        for group in deliveries
        for s in normalise.from_alertmanager(am_payload(*group), source="alertmanager/storm")
    }

    def deliver(worker: int) -> int:
        try:
            start.wait()
            new = 0
            for group in deliveries[worker::THREADS]:
                signals = normalise.from_alertmanager(am_payload(*group), source="alertmanager/storm")
                result = services.signal_ingest(tenant=tenant, signals=signals, actor="storm")
                new += len(result.signals) - len(result.duplicates)
            return new
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        accepted = sum(pool.map(deliver, range(THREADS)))
    assert accepted == len(expected) == Signal.objects.count()
    assert set(Signal.objects.values_list("id", flat=True)) == expected
    events = LedgerEvent.objects.filter(type="controlplane.signal.received")
    assert sorted(events.values_list("subject", flat=True)) == sorted(f"signal/{sid}" for sid in expected)
    # exactly one incident per service (the rule matches any service), none for the unattributed
    assert sorted(Incident.objects.values_list("service", flat=True)) == SERVICES
    assert Signal.objects.filter(service="", reason_codes=["SIGNAL_UNATTRIBUTED"]).exists()
    assert verify_chain().ok
    report = replay_incidents()
    assert report.ok, [str(d) for d in report.differences[:5]]


def _queries(tenant, alerts) -> int:
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    signals = normalise.from_alertmanager(am_payload(*alerts), source="alertmanager/storm")
    with CaptureQueriesContext(conn) as captured:
        services.signal_ingest(tenant=tenant, signals=signals, actor="storm")
    return len(captured)


@pytest.mark.django_db
def test_dedupe_and_silence_matching_are_set_based_not_per_alert(tenant, oncall):
    from datetime import timedelta

    from django.utils import timezone

    services.silence_create(
        actor=oncall,
        reason="maintenance",
        match_labels={"instance": "10.0.1.1:9100"},
        ends_at=timezone.now() + timedelta(hours=1),
    )
    small, large = [_alert(n) for n in range(2)], [_alert(n) for n in range(100, 140)]
    _queries(tenant, small), _queries(tenant, large)
    # a redelivery of a whole group writes nothing and reads the same whatever its size
    assert _queries(tenant, small) == _queries(tenant, large)


@pytest.mark.django_db
def test_one_detection_pass_per_delivery_and_every_alert_still_counted(tenant, rule):
    """Six matching alerts in one delivery, two clusters further apart than the rule's window (300 s):
    one evaluation per cluster (its last alert's bundle counts the cluster), not one per alert."""
    from incidents.models import EvidenceBundle

    times = [0, 30, 60, 1000, 1030, 1060]
    alerts = [am_alert(starts=at(t), fingerprint=f"{t:016x}") for t in times]
    signals = normalise.from_alertmanager(am_payload(*alerts), source="alertmanager/storm")
    result = services.signal_ingest(tenant=tenant, signals=signals, actor="storm")
    assert [(o.decision.decision, o.opened) for o in result.outcomes] == [
        ("PROMOTE", True),
        ("PROMOTE", False),
    ]
    bundles = [sorted(b.signal_ids) for b in EvidenceBundle.objects.order_by("seq")]
    ids = [s.id for s in result.signals]
    assert bundles == [sorted(ids[:3]), sorted(ids[3:])]
    # 6 signals, one bundle of 3 events per cluster, the incident opened and attached once
    assert LedgerEvent.objects.filter(seq__gte=result.signals[0].seq).count() == 6 + 2 * 3 + 2
    assert replay_incidents().ok
