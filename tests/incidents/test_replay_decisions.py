"""Incident replay re-takes every decision it can (issue 10, section 5): the silences in force at each
signal's time (from the silence events, not the signal's own flag), confidence and promotion under the
threshold of the recorded rule and model versions (not the decision event's), and every recorded
lifecycle transition against the incident state machine. Each forgery is found with its reason code."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import connection

from approvals import services as approvals
from controlplane.kernel.reasons import CATALOGUE
from controlplane.ledger.services import ledger_append
from controlplane.runtime.replay import replay_verify
from incidents import detection, normalise, services
from incidents.models import Incident, PromotionDecision, Signal
from incidents.replay import replay_incidents
from incidents.services import signals as signal_services
from tests.identity.factories import PrincipalFactory
from tests.incidents.factories import at, generic, iso, make_rule, open_incident

pytestmark = pytest.mark.django_db


def send(tenant, seconds: float, **kwargs) -> Signal:
    signal = normalise.from_generic(generic(starts=at(seconds), **kwargs))
    return services.signal_ingest(tenant=tenant, signals=[signal], actor="t").signals[0]


def silence(actor, **kwargs):
    defaults = {"reason": "deploy window", "starts_at": at(-60), "ends_at": at(3600), "at": at(-60)}
    return services.silence_create(actor=actor, **{**defaults, **kwargs})


def coded(report) -> set[tuple[str, str, str]]:
    """(subject, field, reason code) of every difference whose rebuilt side names a reason code."""
    return {
        (d.subject, d.field, d.rebuilt.split(":", 1)[0])
        for d in report.differences
        if isinstance(d.rebuilt, str) and d.rebuilt.split(":", 1)[0] in CATALOGUE
    }


@pytest.fixture
def bob(tenant):
    return PrincipalFactory(tenant=tenant, name="bob", human=True, capabilities=["approvals.decide"])


# --- an honest history ---------------------------------------------------------------------------------


def test_an_honest_history_with_silences_and_a_full_lifecycle_replays_clean(tenant, rule, oncall, bob):
    search = silence(oncall, match_service="search")
    assert search.status == "active"
    latency = silence(oncall, match_service="checkout", match_name="Latency")  # could hide `high`
    assert latency.status == "pending_approval"
    approvals.approval_decide(
        approval=latency.approval,
        actor=bob,
        decision="approve",
        reason="ok",
        content_hash=latency.content_hash,
    )
    assert send(tenant, 10, service="search").suppressed_by_id == search.pk
    services.silence_expire(silence=search, actor=oncall, reason="done", at=at(100))
    assert send(tenant, 50, service="search", fingerprint="late").suppressed_by_id is None  # expired: none
    assert send(tenant, 20, name="Latency").suppressed_by_id == latency.pk
    incident = open_incident(tenant)
    for step in ("acknowledge", "resolve", "reopen", "resolve", "close"):
        kwargs = {"reason": "because"}
        incident = getattr(services, f"incident_{step}")(incident=incident, actor=oncall, **kwargs)
    assert incident.status == "closed"
    report = replay_incidents()
    assert report.differences == [], [str(d) for d in report.differences]
    assert replay_incidents(incident.pk).ok
    assert replay_verify().differences == []  # the silence's approval, re-taken by the runtime replay


# --- suppression ---------------------------------------------------------------------------------------


def test_a_suppression_no_silence_in_force_gives_is_found(tenant, rule, oncall, monkeypatch):
    elsewhere = silence(oncall, match_service="search")
    monkeypatch.setattr(signal_services, "silence_matching", lambda **kwargs: elsewhere)
    signal = send(tenant, 0)
    monkeypatch.undo()
    assert signal.suppressed_by_id == elsewhere.pk
    report = replay_incidents()
    assert coded(report) == {(f"signal/{signal.pk}", "suppressed_by", "REPLAY_SUPPRESSION_MISMATCH")}
    [difference] = report.differences
    assert (difference.recorded, difference.rebuilt) == (
        elsewhere.pk,
        "REPLAY_SUPPRESSION_MISMATCH: no silence in force",
    )
    assert difference.seq == signal.seq


def test_signals_a_silence_in_force_covered_but_recorded_unsuppressed_are_found(
    tenant, rule, oncall, monkeypatch
):
    """Nothing suppressed them (the flag on each says so), so they opened an incident; the silence
    events say they were silenced: the suppression and the incident they opened are both found."""
    quiet = silence(oncall, match_service="checkout", match_name="HighErrorRate", match_labels={})
    # criticality high: people grant it first
    bob = PrincipalFactory(tenant=tenant, name="bob", human=True, capabilities=["approvals.decide"])
    approvals.approval_decide(
        approval=quiet.approval, actor=bob, decision="approve", reason="ok", content_hash=quiet.content_hash
    )
    monkeypatch.setattr(signal_services, "silence_matching", lambda **kwargs: None)
    incident = open_incident(tenant)
    monkeypatch.undo()
    report = replay_incidents()
    suppressed = {s.pk for s in Signal.objects.all()}
    found = coded(report)
    assert {(f"signal/{sid}", "suppressed_by", "REPLAY_SUPPRESSION_MISMATCH") for sid in suppressed} <= found
    fields = {(d.subject, d.field) for d in report.differences}
    assert (f"incident/{incident.pk}", "opening decision") in fields  # nothing to promote once silenced


# --- confidence and promotion --------------------------------------------------------------------------


def test_a_forged_confidence_score_is_found(tenant, rule, monkeypatch):
    honest = detection.assess

    def inflated(rule_content, signals, *, model_version=detection.MODEL_VERSION):
        assessed = honest(rule_content, signals, model_version=model_version)
        factors = tuple(
            dataclasses.replace(f, value_bp=10000) if f.name == "rule_precision" else f
            for f in assessed.factors
        )
        return dataclasses.replace(assessed, factors=factors)

    monkeypatch.setattr(detection, "assess", inflated)
    incident = open_incident(tenant)
    monkeypatch.undo()
    evidence = incident.evidence.get()
    report = replay_incidents()
    subject = f"evidence/{evidence.pk}"
    assert coded(report) == {
        (subject, "confidence.factors", "REPLAY_CONFIDENCE_MISMATCH"),
        (subject, "confidence.score_bp", "REPLAY_CONFIDENCE_MISMATCH"),
        (subject, "decision.score_bp", "REPLAY_CONFIDENCE_MISMATCH"),
    }
    score = {d.field: d for d in report.differences}["confidence.score_bp"]
    assert score.recorded == evidence.assessment.score_bp
    # rule_precision (weight 2500) forged from 8000 to 10000: 500 basis points more than the model gives
    assert score.rebuilt == f"REPLAY_CONFIDENCE_MISMATCH: {score.recorded - 500}"


def test_a_decision_at_a_threshold_the_decision_event_made_up_is_found(tenant, monkeypatch):
    """The decision event says `threshold_bp: 1000` and PROMOTE; replay takes the threshold from the
    recorded rule and model versions (6000), so the decision is REJECT and the incident should not be."""
    make_rule(tenant, name="search-noise", match_service="search", precision_bp=1000, severity="low")
    honest = detection.promote
    monkeypatch.setattr(
        detection, "promote", lambda score_bp, threshold_bp=0: honest(score_bp, threshold_bp=1000)
    )
    for index in range(3):
        send(tenant, 0, service="search", fingerprint=f"s{index}", severity="info")
    monkeypatch.undo()
    decision = PromotionDecision.objects.get()
    assert (decision.decision, decision.threshold_bp) == ("PROMOTE", 1000)
    incident = Incident.objects.get()
    report = replay_incidents()
    subject = f"evidence/{decision.evidence_id}"
    assert coded(report) == {
        (subject, "decision", "REPLAY_DECISION_MISMATCH"),
        (subject, "decision.threshold_bp", "REPLAY_DECISION_MISMATCH"),
        (subject, "decision.reason_codes", "REPLAY_DECISION_MISMATCH"),
    }
    found = {(d.subject, d.field): d for d in report.differences}
    assert found[(subject, "decision")].rebuilt == "REPLAY_DECISION_MISMATCH: REJECT"
    assert found[(f"incident/{incident.pk}", "opening decision")].rebuilt == "REJECT"


def test_a_forged_decision_is_found(incident, monkeypatch):
    evidence = incident.evidence.get()
    with connection.cursor() as cursor:  # the recorded decision rewritten behind the ledger's back
        cursor.execute("ALTER TABLE ledger_ledgerevent DISABLE TRIGGER USER")
        try:
            cursor.execute(
                "UPDATE ledger_ledgerevent SET data = jsonb_set(data::jsonb, '{decision}', '\"REJECT\"') "
                "WHERE type = 'controlplane.promotion.decided' AND subject = %s",
                [f"evidence/{evidence.pk}"],
            )
        finally:
            cursor.execute("ALTER TABLE ledger_ledgerevent ENABLE TRIGGER USER")
    report = replay_incidents()
    assert (f"evidence/{evidence.pk}", "decision", "REPLAY_DECISION_MISMATCH") in coded(report)


# --- lifecycle -----------------------------------------------------------------------------------------


def _append(incident: Incident, verb: str, **data) -> int:
    return ledger_append(
        type=f"controlplane.incident.{verb}",
        subject=f"incident/{incident.pk}",
        data={"incident": incident.pk, "reason": "forged", "at": iso(at(900)), **data},
        tenant="acme",
        actor="acme/alice",
        time=at(900),
    ).seq


@pytest.mark.parametrize(
    ("verb", "data", "field", "code"),
    [
        (
            "closed",
            {"from": "open", "to": "closed"},
            "lifecycle.transition",
            "INCIDENT_TRANSITION_NOT_ALLOWED",
        ),
        (
            "reopened",
            {"from": "resolved", "to": "open"},
            "lifecycle.transition",
            "INCIDENT_TRANSITION_NOT_ALLOWED",
        ),
        (
            "acknowledged",
            {"from": "resolved", "to": "acknowledged"},
            "lifecycle.transition",
            "INCIDENT_TRANSITION_NOT_ALLOWED",
        ),
        (
            "archived",
            {"from": "open", "to": "archived"},
            "lifecycle.transition",
            "INCIDENT_TRANSITION_NOT_ALLOWED",
        ),
        (
            "severity.raised",
            {"from": "high", "to": "low"},
            "lifecycle.severity",
            "INCIDENT_SEVERITY_NOT_RAISED",
        ),
    ],
)
def test_an_illegal_recorded_transition_is_found(incident, verb, data, field, code):
    seq = _append(incident, verb, **data)
    report = replay_incidents(incident.pk)
    assert coded(report) == {(f"incident/{incident.pk}", field, code)}
    [difference] = [d for d in report.differences if d.field == field]
    assert difference.seq == seq


def test_a_forged_close_with_its_row_rewritten_to_match_is_found(incident):
    """Events and row agree (open -> closed), so only the state machine can tell."""
    seq = _append(incident, "closed", **{"from": "open", "to": "closed"})
    Incident.objects.filter(pk=incident.pk).update(status="closed", closed_at=at(900))
    report = replay_incidents(incident.pk)
    assert [(d.field, d.recorded, d.rebuilt, d.seq) for d in report.differences] == [
        (
            "lifecycle.transition",
            "open -> closed (closed)",
            "INCIDENT_TRANSITION_NOT_ALLOWED: an incident that is open cannot be closed (close goes from "
            "resolved)",
            seq,
        )
    ]


def test_a_reopen_while_another_incident_of_the_rule_is_open_is_found(tenant, rule, oncall):
    first = open_incident(tenant)
    services.incident_resolve(incident=first, actor=oncall, reason="fixed")
    second = open_incident(tenant, start=1000)
    assert second.pk != first.pk
    _append(first, "reopened", **{"from": "resolved", "to": "open"})
    found = coded(replay_incidents())
    assert (f"incident/{first.pk}", "lifecycle.transition", "INCIDENT_TRANSITION_NOT_ALLOWED") in found
