"""Replay rebuilds incidents from the ledger and re-runs evidence, confidence and promotion with the
recorded rule and model versions; it finds projection rows changed behind the services' back."""

from __future__ import annotations

import pytest
from django.db import connection

from incidents import normalise, services
from incidents.models import EvidenceBundle, Incident, PromotionDecision
from incidents.replay import replay_incidents
from tests.incidents.factories import at, generic, make_rule, open_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(tenant, rule, oncall):
    """An incident acknowledged and mitigated, plus a rejected bundle of another rule."""
    incident = open_incident(tenant)
    services.incident_acknowledge(incident=incident, actor=oncall)
    services.incident_raise_severity(incident=incident, actor=oncall, severity="critical", reason="revenue")
    make_rule(tenant, name="search-noise", match_service="search", precision_bp=1000, severity="low")
    for index in range(3):
        signal = normalise.from_generic(
            generic(service="search", starts=at(0), fingerprint=f"s{index}", severity="info")
        )
        services.signal_ingest(tenant=tenant, signals=[signal], actor="t")
    assert PromotionDecision.objects.filter(decision="REJECT").count() == 1
    return incident


def test_replay_of_an_untouched_history_finds_no_difference(history):
    report = replay_incidents()
    assert report.ok, [str(d) for d in report.differences]
    assert report.checked == 1
    one = replay_incidents(history.pk)
    assert one.ok and one.checked == 1


def test_a_rule_changed_later_does_not_alter_old_decisions(tenant, history, admin):
    before = {
        e.pk: (e.rule_version_id, e.assessment.score_bp, e.decision.decision)
        for e in EvidenceBundle.objects.select_related("assessment", "decision")
    }
    make_rule(tenant, threshold=50, precision_bp=0, severity="low", actor=admin)  # v2 of checkout-errors
    make_rule(
        tenant,
        name="search-noise",
        match_service="search",
        precision_bp=10000,
        severity="critical",
        actor=admin,
    )
    after = {
        e.pk: (e.rule_version_id, e.assessment.score_bp, e.decision.decision)
        for e in EvidenceBundle.objects.select_related("assessment", "decision")
    }
    assert after == before
    report = replay_incidents()
    assert report.ok, [str(d) for d in report.differences]


def _sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_an_incident_row_changed_behind_the_services_back_is_found(history):
    _sql("UPDATE incidents_incident SET status = 'resolved', severity = 'low' WHERE id = %s", [history.pk])
    report = replay_incidents(history.pk)
    found = {(d.subject, d.field, d.recorded, d.rebuilt) for d in report.differences}
    assert found == {
        (f"incident/{history.pk}", "status", "resolved", "acknowledged"),
        (f"incident/{history.pk}", "severity", "low", "critical"),
    }


def test_a_tampered_confidence_or_decision_row_is_found(history):
    evidence = history.evidence.first()
    _sql("UPDATE incidents_confidenceassessment SET score_bp = 9999 WHERE evidence_id = %s", [evidence.pk])
    rejected = PromotionDecision.objects.get(decision="REJECT")
    _sql("UPDATE incidents_promotiondecision SET decision = 'PROMOTE' WHERE id = %s", [rejected.pk])
    report = replay_incidents()
    fields = {(d.subject, d.field) for d in report.differences}
    assert fields == {
        (f"evidence/{evidence.pk}", "row.score_bp"),
        (f"evidence/{rejected.evidence_id}", "row.decision"),
    }


def test_an_evidence_row_with_other_signals_is_found(history):
    evidence = history.evidence.first()
    _sql("UPDATE incidents_evidencebundle SET signal_ids = %s WHERE id = %s", ['["forged"]', evidence.pk])
    report = replay_incidents(history.pk)
    assert [(d.field, d.recorded) for d in report.differences] == [("row.signal_ids", ["forged"])]


def test_an_incident_without_ledger_events_is_found(history):
    _sql(
        "INSERT INTO incidents_incident (id, tenant_id, service, rule_id, title, status, severity, "
        "severity_raised_to, opened_at, updated_at) SELECT %s, tenant_id, 'ghost', rule_id, 'ghost', 'open', "
        "'low', '', opened_at, updated_at FROM incidents_incident WHERE id = %s",
        ["f" * 64, history.pk],
    )
    report = replay_incidents()
    assert [(d.subject, d.field) for d in report.differences] == [(f"incident/{'f' * 64}", "ledger")]
    assert Incident.objects.count() == 2


def test_manage_py_replay_incidents_exits_1_on_a_difference(history):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("replay", "--verify", "--incident", history.pk, stdout=out)
    assert out.getvalue().strip().endswith("incidents replay: 1 checked, 0 difference(s)")
    _sql("UPDATE incidents_incident SET status = 'closed' WHERE id = %s", [history.pk])
    out = StringIO()
    with pytest.raises(CommandError, match=r"^REPLAY_DIFFERENCE: ") as failed:
        call_command("replay", "--incidents", stdout=out)
    assert failed.value.returncode == 1
    assert f"DIFF incident/{history.pk} status: recorded 'closed', rebuilt 'acknowledged'" in out.getvalue()
