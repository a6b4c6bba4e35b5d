"""Silences: suppression recorded per signal, expiry by the signals' own time or by a person, maximum
duration, and approval before silencing a high or critical service."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from incidents import normalise, services
from incidents.models import EvidenceBundle, Signal, Silence
from tests.identity.factories import PrincipalFactory, token_for
from tests.incidents.factories import auth, generic, make_rule

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def send(tenant, seconds: float, **kwargs):
    signal = normalise.from_generic(generic(starts=NOW + timedelta(seconds=seconds), **kwargs))
    return services.signal_ingest(tenant=tenant, signals=[signal], actor="t").signals[0]


@pytest.fixture
def medium_rule(tenant):
    return make_rule(tenant, name="search-errors", match_service="search", severity="medium", threshold=1)


def silence(actor, **kwargs):
    defaults = {
        "reason": "deploy window",
        "ends_at": NOW + timedelta(hours=1),
        "at": NOW - timedelta(minutes=1),
    }
    return services.silence_create(actor=actor, **{**defaults, **kwargs})


def test_a_silenced_signal_is_stored_with_its_silence_and_detects_nothing(tenant, medium_rule, oncall):
    quiet = silence(oncall, match_service="search", starts_at=NOW - timedelta(minutes=1))
    assert (quiet.status, quiet.criticality) == ("active", "medium")
    signal = send(tenant, 10, service="search")
    assert signal.suppressed_by_id == quiet.pk
    event = LedgerEvent.objects.get(subject=f"signal/{signal.pk}")
    assert (event.reason_codes, event.data["suppressed_by"]) == (["SUPPRESSED_BY_SILENCE"], quiet.pk)
    assert EvidenceBundle.objects.count() == 0
    unsilenced = send(tenant, 20, service="search", name="Latency")  # the silence matches every name
    assert unsilenced.suppressed_by_id == quiet.pk
    other_service = send(tenant, 30, service="checkout")
    assert other_service.suppressed_by_id is None


def test_a_silence_stops_matching_at_its_end_by_the_signals_own_time(tenant, medium_rule, oncall):
    quiet = silence(oncall, match_service="search", starts_at=NOW, ends_at=NOW + timedelta(minutes=10))
    after = send(tenant, 11 * 60, service="search")
    assert after.suppressed_by_id is None
    assert EvidenceBundle.objects.count() == 1
    late_delivery_of_an_early_signal = send(tenant, 60, service="search", fingerprint="early")
    assert late_delivery_of_an_early_signal.suppressed_by_id == quiet.pk


def test_a_person_expires_a_silence_and_it_matches_nothing_afterwards(tenant, medium_rule, oncall):
    quiet = silence(oncall, match_service="search", starts_at=NOW - timedelta(minutes=1))
    services.silence_expire(silence=quiet, actor=oncall, reason="deploy done", at=NOW)
    quiet.refresh_from_db()
    assert (quiet.status, quiet.ends_at) == ("expired", NOW)
    assert send(tenant, 5, service="search").suppressed_by_id is None
    with pytest.raises(ControlPlaneError) as again:
        services.silence_expire(silence=quiet, actor=oncall, reason="twice")
    assert again.value.code == "SILENCE_NOT_ACTIVE"


def test_silencing_a_high_service_waits_for_approval(client, tenant, rule, oncall, oncall_token):
    response = client.post(
        "/api/v1/silences/",
        {
            "match_service": "checkout",
            "ends_at": (NOW + timedelta(hours=2)).isoformat(),
            "reason": "db migration",
        },
        content_type="application/json",
        **auth(oncall_token),
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["criticality"]) == ("pending_approval", "high")
    request = ApprovalRequest.objects.get(pk=body["approval"])
    assert (request.subject_kind, request.subject_id, request.quorum) == ("incidents.silence", body["id"], 1)
    assert request.content_hash == body["content_hash"]
    soon = (timezone.now() - NOW).total_seconds() + 60  # inside the silence, whenever this runs
    assert send(tenant, soon).suppressed_by_id is None  # not silenced while pending
    bob = PrincipalFactory(tenant=tenant, name="bob", human=True, capabilities=["approvals.decide"])
    approvals.approval_decide(
        approval=request, actor=bob, decision="approve", reason="ok for 2h", content_hash=request.content_hash
    )
    quiet = Silence.objects.get(pk=body["id"])
    assert quiet.status == "active"
    request.refresh_from_db()
    assert request.consumed_at is not None
    assert send(tenant, soon + 1).suppressed_by_id == quiet.pk
    types = list(LedgerEvent.objects.filter(subject=f"silence/{quiet.pk}").values_list("type", flat=True))
    assert types == ["controlplane.silence.created", "controlplane.silence.activated"]


def test_critical_needs_two_approvers_and_a_rejection_rejects(tenant, oncall):
    make_rule(tenant, name="pay", match_service="payments", severity="critical")
    quiet = silence(oncall, match_service="payments")
    request = ApprovalRequest.objects.get(pk=quiet.approval_id)
    assert (request.quorum, request.risk_tier) == (2, "critical")
    carol = PrincipalFactory(tenant=tenant, name="carol", human=True, capabilities=["approvals.decide"])
    approvals.approval_decide(
        approval=request,
        actor=carol,
        decision="reject",
        reason="not during peak",
        content_hash=request.content_hash,
    )
    quiet.refresh_from_db()
    assert quiet.status == "rejected"
    assert LedgerEvent.objects.get(type="controlplane.silence.rejected").reason_codes == ["APPROVAL_REJECTED"]


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"match_service": "search", "ends_at": NOW + timedelta(days=8)}, "SILENCE_TOO_LONG", "ends_at"),
        ({}, "SILENCE_INVALID", "match_service"),
        ({"match_service": "search", "ends_at": NOW - timedelta(minutes=5)}, "SILENCE_INVALID", "ends_at"),
        ({"match_service": "search", "match_labels": {"a": 1}}, "SILENCE_INVALID", "match_labels"),
    ],
)
def test_invalid_silences_are_refused_and_write_nothing(tenant, oncall, kwargs, code, field):
    before = (LedgerEvent.objects.count(), Silence.objects.count())
    with pytest.raises(ControlPlaneError) as refused:
        silence(oncall, **kwargs)
    assert (refused.value.code, refused.value.extra["field"]) == (code, field)
    assert (LedgerEvent.objects.count(), Silence.objects.count()) == before


def test_max_duration_comes_from_settings(tenant, oncall, settings):
    settings.CONTROLPLANE_SILENCE_MAX_SECONDS = 600
    with pytest.raises(ControlPlaneError) as refused:
        silence(oncall, match_service="search", ends_at=NOW + timedelta(minutes=20))
    assert refused.value.code == "SILENCE_TOO_LONG"


def test_only_people_create_silences(client, tenant):
    bot = PrincipalFactory(tenant=tenant, name="bot", agent=True, capabilities=["silences.manage"])
    token = token_for(bot)
    before = LedgerEvent.objects.count()
    response = client.post(
        "/api/v1/silences/",
        {"match_service": "search", "ends_at": (NOW + timedelta(hours=1)).isoformat(), "reason": "shh"},
        content_type="application/json",
        **auth(token),
    )
    assert (response.status_code, response.json()["code"]) == (403, "INCIDENT_ACTOR_NOT_HUMAN")
    assert LedgerEvent.objects.count() == before and Silence.objects.count() == 0


def test_signals_view_shows_what_was_suppressed_and_why(client, tenant, medium_rule, oncall, oncall_token):
    quiet = silence(oncall, match_service="search", starts_at=NOW - timedelta(minutes=1))
    send(tenant, 1, service="search")
    send(tenant, 2, service="checkout")
    suppressed = client.get("/api/v1/signals/?suppressed=true", **auth(oncall_token)).json()["results"]
    assert [(s["service"], s["suppressed_by"]) for s in suppressed] == [("search", quiet.pk)]
    kept = client.get("/api/v1/signals/?suppressed=false", **auth(oncall_token)).json()["results"]
    assert [s["service"] for s in kept] == ["checkout"]
    listed = client.get("/api/v1/silences/", **auth(oncall_token)).json()["results"]
    assert [(s["id"], s["state"], s["suppressed_count"]) for s in listed] == [(quiet.pk, "active", 1)]
    assert Signal.objects.filter(suppressed_by=quiet).count() == 1
