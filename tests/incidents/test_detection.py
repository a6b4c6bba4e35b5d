"""Detection, evidence, confidence, promotion and incidents, through `signal_ingest`.

Every expected id and score is computed here from the documented formulas, not read back from the code.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from incidents import normalise, services
from incidents.models import ConfidenceAssessment, DetectionRuleVersion, EvidenceBundle, Incident, Signal
from tests.incidents.factories import at, generic, make_rule

pytestmark = pytest.mark.django_db


def send(tenant, **kwargs):
    return services.signal_ingest(
        tenant=tenant, signals=[normalise.from_generic(generic(**kwargs))], actor="t"
    )


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_threshold_met_gives_evidence_confidence_promotion_and_an_incident(tenant, rule):
    first = send(tenant, starts=at(0))
    second = send(tenant, starts=at(60))
    assert first.outcomes == [] and second.outcomes == []  # 2 of 3
    third = send(tenant, starts=at(120), source="prometheus-us")
    [outcome] = third.outcomes
    ids = sorted(Signal.objects.values_list("id", flat=True))
    expected_evidence = hashlib.sha256(
        canonical(
            {
                "rule_version": rule.id,
                "signals": ids,
                "window": {"end": "2026-03-01T12:02:00.000000Z", "start": "2026-03-01T11:57:00.000000Z"},
            }
        )
    ).hexdigest()
    assert outcome.evidence.id == expected_evidence
    assert outcome.evidence.window_end == at(120)
    # Factors: 3 of threshold 3 -> 5000; critical -> 10000; 2 sources -> 10000; 120 s of 300 -> 4000; 8000.
    factors = {f["name"]: (f["value_bp"], f["weight_bp"]) for f in outcome.assessment.factors}
    assert factors == {
        "threshold_ratio": (5000, 3000),
        "severity": (10000, 2000),
        "source_diversity": (10000, 1000),
        "duration": (4000, 1500),
        "rule_precision": (8000, 2500),
    }
    assert outcome.assessment.score_bp == 1500 + 2000 + 1000 + 600 + 2000 == 7100
    assert outcome.assessment.model_version == "v1.0.0"
    assert (outcome.decision.decision, outcome.decision.reason_codes) == (
        "PROMOTE",
        ["THRESHOLD_MET", "CONFIDENCE_MET"],
    )
    incident = outcome.incident
    assert incident.id == hashlib.sha256(f"checkout{expected_evidence}".encode()).hexdigest()
    assert (incident.status, incident.severity, incident.service) == ("open", "high", "checkout")
    assert incident.opened_at == outcome.decision.decided_at == at(120)  # the decision's time, not the clock
    types = list(LedgerEvent.objects.filter(seq__gte=outcome.evidence.seq).values_list("type", flat=True))
    assert types == [
        "controlplane.evidence.assembled",
        "controlplane.confidence.assessed",
        "controlplane.promotion.decided",
        "controlplane.incident.opened",
    ]


def test_evaluation_uses_the_signals_own_times_not_the_clock(tenant, rule):
    """Signals from years ago still meet the threshold among themselves; spread wider than W, they don't."""
    old = datetime(2019, 5, 4, 3, 2, 1, tzinfo=UTC)
    for offset in (0, 100, 200):
        send(tenant, starts=old.replace(second=1) + (at(offset) - at(0)))
    assert EvidenceBundle.objects.count() == 1
    for offset in (0, 400, 800):  # pairwise more than 300 s apart: never 3 in one window
        send(tenant, starts=at(offset), name="HighErrorRate", fingerprint=f"spread-{offset}")
    assert EvidenceBundle.objects.count() == 1


def test_low_confidence_is_rejected_and_opens_nothing(tenant):
    make_rule(tenant, precision_bp=2000, severity="medium")
    for index in range(3):
        send(tenant, starts=at(0), severity="warning", fingerprint=f"burst-{index}")
    [evidence] = EvidenceBundle.objects.all()
    # 5000*0.3 + 5000*0.2 + 5000*0.1 + 0 (a burst) + 2000*0.25 = 3500
    assert evidence.assessment.score_bp == 3500
    assert (evidence.decision.decision, evidence.decision.reason_codes) == (
        "REJECT",
        ["THRESHOLD_MET", "CONFIDENCE_BELOW_THRESHOLD"],
    )
    assert Incident.objects.count() == 0
    event = LedgerEvent.objects.get(type="controlplane.promotion.decided")
    assert event.reason_codes == ["THRESHOLD_MET", "CONFIDENCE_BELOW_THRESHOLD"]


def test_new_evidence_attaches_to_the_open_incident_and_raises_its_derived_severity(tenant, rule):
    critical = make_rule(tenant, name="checkout-critical", severity="critical", threshold=5)
    for index in range(3):
        send(tenant, starts=at(index * 30))
    incident = Incident.objects.get(rule=rule.rule)
    assert incident.severity == "high"
    for index in range(3, 6):
        send(tenant, starts=at(index * 30))
    incidents = Incident.objects.order_by("opened_at")
    assert incidents.count() == 2  # one per rule
    incident.refresh_from_db()
    assert incident.evidence.count() == 4  # signals 3, 4, 5 and 6 each close a window of the rule
    assert Incident.objects.get(rule=critical.rule).severity == "critical"
    attached = LedgerEvent.objects.filter(
        type="controlplane.incident.evidence.attached", subject=f"incident/{incident.id}"
    )
    assert attached.count() == 3
    assert attached.first().reason_codes == ["EVIDENCE_ATTACHED_TO_OPEN_INCIDENT"]


def test_after_resolution_new_evidence_opens_a_new_incident(tenant, rule, oncall):
    for index in range(3):
        send(tenant, starts=at(index))
    first = Incident.objects.get()
    services.incident_resolve(incident=first, actor=oncall, reason="rolled back")
    send(tenant, starts=at(3))
    assert Incident.objects.count() == 2
    assert Incident.objects.exclude(pk=first.pk).get().status == "open"


def test_resolved_signals_do_not_count(tenant, rule):
    send(tenant, starts=at(0))
    send(tenant, starts=at(1))
    resolved = normalise.from_generic(
        generic(starts=at(2), status="resolved", ends_at="2026-03-01T12:00:03Z")
    )
    services.signal_ingest(tenant=tenant, signals=[resolved], actor="t")
    assert EvidenceBundle.objects.count() == 0


def test_rule_versions_are_immutable_and_old_evidence_keeps_its_version(tenant, rule, admin):
    for index in range(3):
        send(tenant, starts=at(index))
    evidence = EvidenceBundle.objects.get()
    v2 = make_rule(tenant, threshold=10, actor=admin)
    assert (v2.version, v2.rule_id) == (2, rule.rule_id)
    assert make_rule(tenant, threshold=10, actor=admin).pk == v2.pk  # same content: no new version
    assert DetectionRuleVersion.objects.filter(rule=rule.rule).count() == 2
    evidence.refresh_from_db()
    assert evidence.rule_version_id == rule.id
    with pytest.raises(ControlPlaneError) as refused:
        rule.threshold = 1
        rule.save()
    assert refused.value.code == "RULE_VERSION_IMMUTABLE"
    assert DetectionRuleVersion.objects.get(pk=rule.pk).threshold == 3
    versioned = LedgerEvent.objects.filter(type="controlplane.detection.rule.versioned").order_by("seq")
    assert [e.data["version"] for e in versioned] == [1, 2]
    assert versioned.last().actor == admin.ref


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"threshold": 0}, "threshold"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"precision_bp": 10001}, "precision_bp"),
        ({"severity": "urgent"}, "severity"),
        ({"min_severity": "p1"}, "min_severity"),
        ({"match_labels": {"team": 7}}, "match_labels"),
    ],
)
def test_invalid_rule_content_is_refused_naming_the_field(tenant, content, field):
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        make_rule(tenant, **content)
    assert (refused.value.code, refused.value.extra["field"]) == ("RULE_INVALID", field)
    assert LedgerEvent.objects.count() == before and DetectionRuleVersion.objects.count() == 0


def test_rule_matchers_labels_and_minimum_severity(tenant):
    make_rule(tenant, match_labels={"region": "eu"}, min_severity="high", threshold=1, precision_bp=10000)
    send(tenant, starts=at(0), labels={"region": "us"})
    send(tenant, starts=at(1), labels={"region": "eu"}, severity="warning")
    assert EvidenceBundle.objects.count() == 0
    send(tenant, starts=at(2), labels={"region": "eu"}, severity="critical")
    assert EvidenceBundle.objects.count() == 1


def test_assessment_is_stored_with_the_rule_it_was_made_with(tenant, rule):
    for index in range(3):
        send(tenant, starts=at(index * 100))
    assessment = ConfidenceAssessment.objects.get()
    event = LedgerEvent.objects.get(type="controlplane.confidence.assessed")
    assert event.data["factors"] == assessment.factors and event.data["score_bp"] == assessment.score_bp
    assert sum(f["weight_bp"] for f in assessment.factors) == 10000


def test_a_delivery_is_chained_in_one_append_after_its_writes_and_rows_get_their_events_seqs(tenant, rule):
    """The chain's lock is taken once per delivery, after every row it writes (docs/incidents.md)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    send(tenant, starts=at(0))
    send(tenant, starts=at(30))
    alerts = [normalise.from_generic(generic(starts=at(60 + i * 30), source=f"p{i}")) for i in range(2)]
    with CaptureQueriesContext(connection) as captured:
        result = services.signal_ingest(tenant=tenant, signals=alerts, actor="t")
    # one detection pass per delivery: the last alert's bundle counts the first too (both in its window)
    assert [o.decision.decision for o in result.outcomes] == ["PROMOTE"]
    assert [o.opened for o in result.outcomes] == [True]
    assert sorted(result.outcomes[0].evidence.signal_ids) == sorted(s.id for s in Signal.objects.all())
    sql = [q["sql"] for q in captured.captured_queries]
    locks = [i for i, s in enumerate(sql) if "pg_advisory_xact_lock" in s]
    detection_lock, chain_lock = locks  # "(namespace, key)" and the chain's single key
    assert "," in sql[detection_lock] and "," not in sql[chain_lock]
    writes = [i for i, s in enumerate(sql) if s.startswith(("INSERT", "UPDATE")) or "FOR UPDATE" in s]
    assert detection_lock < min(writes)
    after = [s.strip() for s in sql[chain_lock + 1 :] if not s.startswith("RELEASE SAVEPOINT")]
    head, insert, settle = after  # read the head, one INSERT of all the delivery's events, the seqs
    assert head.startswith("SELECT") and insert.startswith("INSERT INTO ledger_ledgerevent")
    assert settle.startswith("WITH") and settle.count("UPDATE") == 2
    assert '"incidents_signal"' in settle and '"incidents_evidencebundle"' in settle
    # ... and every row holds the seq of its own event, in chain order
    for signal in Signal.objects.all():
        assert signal.seq == LedgerEvent.objects.get(subject=f"signal/{signal.id}").seq
    for bundle in EvidenceBundle.objects.all():
        assembled = LedgerEvent.objects.get(subject=f"evidence/{bundle.id}", type__endswith="assembled")
        assert bundle.seq == assembled.seq
    assert [o.evidence.seq for o in result.outcomes] == sorted(b.seq for b in EvidenceBundle.objects.all())
    types = list(LedgerEvent.objects.filter(seq__gte=result.signals[0].seq).values_list("type", flat=True))
    assert types == [
        "controlplane.signal.received",
        "controlplane.signal.received",
        "controlplane.evidence.assembled",
        "controlplane.confidence.assessed",
        "controlplane.promotion.decided",
        "controlplane.incident.opened",
    ]
    from incidents.replay import replay_incidents

    assert replay_incidents().ok


def test_when_the_delivery_cannot_be_chained_nothing_of_it_is_written(tenant, rule, settings):
    """The events are appended after the rows are written; a failing append rolls the rows back too."""
    import shutil

    from controlplane.ledger import crypto
    from tests.incidents.factories import written

    send(tenant, starts=at(0))
    send(tenant, starts=at(30))
    before = written()
    shutil.rmtree(settings.CONTROLPLANE_KEY_DIR)  # the active key's private half is gone
    crypto.forget_loaded_keys()
    with pytest.raises(ControlPlaneError) as refused:
        send(tenant, starts=at(60))  # would promote and open an incident
    assert refused.value.code == "LEDGER_KEY_UNAVAILABLE"
    assert written() == before
    assert not Signal.objects.filter(seq__lt=0).exists()
