"""A storm of signals sent concurrently (threads, each with its own database connection and transaction)
opens exactly one incident; every promoted bundle attaches to it. The detection lock serialises only
deliveries to the same service, and ingest never waits for a row while holding the chain's lock."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from controlplane.ledger.verify import verify_chain
from incidents import normalise, services
from incidents.models import EvidenceBundle, Incident, Signal
from incidents.replay import replay_incidents
from tests.incidents.factories import at, generic, make_rule, open_incident

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


def _waiting(locktype_sql: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM pg_locks WHERE NOT granted AND {locktype_sql}")  # noqa: S608
        return cursor.fetchone()[0] > 0


def _until(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def _ingest_in_thread(tenant, payload: dict) -> tuple[threading.Thread, list]:
    done: list = []

    def run() -> None:
        try:
            done.append(
                services.signal_ingest(tenant=tenant, signals=[normalise.from_generic(payload)], actor="t")
            )
        except Exception as exc:  # reported by the test
            done.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


@pytest.mark.django_db(transaction=True)
def test_the_detection_lock_holds_up_only_deliveries_to_the_same_service(tenant):
    make_rule(tenant, threshold=2, window_seconds=600)
    with transaction.atomic():
        services.detection_locks_take(scopes=[(tenant.pk, "checkout")])  # an ingest of checkout, mid-way
        other, other_done = _ingest_in_thread(tenant, generic(service="payments", starts=at(0)))
        other.join(timeout=10)
        assert other_done and not isinstance(other_done[0], Exception), other_done
        same, same_done = _ingest_in_thread(tenant, generic(service="checkout", starts=at(0)))
        assert _until(lambda: _waiting("locktype = 'advisory' AND objsubid = 2"))
        assert not same_done
    same.join(timeout=10)
    assert same_done and not isinstance(same_done[0], Exception), same_done
    assert sorted(Signal.objects.values_list("service", flat=True)) == ["checkout", "payments"]


@pytest.mark.django_db(transaction=True)
def test_a_person_acting_on_an_incident_while_its_evidence_arrives_does_not_deadlock(tenant, oncall):
    """Both take the incident's row lock before the chain's lock. (Before appends were deferred, ingest
    took the chain lock with the signal's event and then waited for the row: a deadlock.)"""
    make_rule(tenant, threshold=3, window_seconds=600)
    incident = open_incident(tenant)
    with transaction.atomic():
        Incident.objects.select_for_update().get(pk=incident.pk)  # incident_acknowledge's first step ...
        arriving, arrived = _ingest_in_thread(tenant, generic(starts=at(180)))  # evidence for it
        assert _until(lambda: _waiting("locktype IN ('transactionid', 'tuple')"))  # waits for the row
        services.incident_acknowledge(incident=incident, actor=oncall)  # ... appends: the chain is free
    arriving.join(timeout=10)
    assert arrived and not isinstance(arrived[0], Exception), arrived
    [outcome] = arrived[0].outcomes
    assert outcome.incident.pk == incident.pk and not outcome.opened
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    assert incident.evidence.count() == 2
    assert verify_chain().ok
    report = replay_incidents()
    assert report.ok, [str(d) for d in report.differences[:5]]
