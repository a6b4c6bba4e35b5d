"""`governance validate`: a deliberately drifted fixture per check, a test per finding code, the command's
exit codes and JSON, and the ledgered result."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from controlplane.kernel import governance as kernel
from controlplane.kernel import telemetry
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from controlplane.policy import shipped
from controlplane.policy.content import content_hash
from controlplane.policy.models import PolicyProfile
from governance import checks
from incidents.models import DetectionRule, DetectionRuleVersion
from skills.core import CORE_SKILL
from skills.models import Skill
from skills.verification import manifest_hash
from tests.identity.factories import TenantFactory

pytestmark = pytest.mark.django_db


def _findings(*names: str) -> list[kernel.Finding]:
    return kernel.validate(only=names).findings


def _codes(*names: str) -> set[str]:
    return {finding.code for finding in _findings(*names)}


def test_a_clean_installation_validates_with_no_findings():
    result = kernel.validate()
    assert result.ok, [f.as_dict() for f in result.findings]
    assert set(result.checks) >= {"settings", "modes", "fallback", "docs", "stored", "ledger", "skills"}


# --- schema: settings and the mode matrix ---------------------------------------------------------------


def test_a_mode_matrix_value_outside_its_schema_is_named_with_its_pointer(settings):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"prod": {"envelope": "audit"}}
    findings = _findings("settings")
    assert [(f.code, f.object, f.pointer) for f in findings] == [
        ("GOVERNANCE_SCHEMA_INVALID", "settings/CONTROLPLANE_GOVERNANCE_MODES", "/prod/envelope")
    ]


def test_an_unknown_environment_in_the_matrix_is_refused_by_the_schema(settings):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"qa": dict(kernel.DEFAULT_MATRIX["dev"])}
    assert _codes("settings") == {"GOVERNANCE_SCHEMA_INVALID"}


# --- schema: stored policy profiles and detection rules ------------------------------------------------


def test_a_stored_profile_whose_content_left_the_schema_is_named():
    content = {**copy.deepcopy(shipped.STRICT_CONTENT), "surprise": 1}
    # bulk_create skips the model's save() validation: the drift a raw write or an old bug would leave.
    PolicyProfile.objects.bulk_create(
        [
            PolicyProfile(
                name="drifted",
                version=1,
                environment="stage",
                content=content,
                content_hash=content_hash(content),
                created_by="test",
            )
        ]
    )
    findings = _findings("stored")
    assert [(f.code, f.object, f.pointer) for f in findings] == [
        ("GOVERNANCE_SCHEMA_INVALID", "policy-profile/drifted@v1", "/content")
    ]
    assert "surprise" in findings[0].detail


def test_a_detection_rule_version_outside_its_schema_is_named_with_its_pointer():
    tenant = TenantFactory(slug="acme")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rule = DetectionRule.objects.create(tenant=tenant, name="cpu", current_version=1, created_at=now)
    DetectionRuleVersion.objects.create(
        id="f" * 64,
        rule=rule,
        version=1,
        threshold=0,
        window_seconds=60,
        severity="high",
        precision_bp=12000,
        content_hash="0" * 64,
        created_by="test",
        created_at=now,
    )
    findings = _findings("stored")
    assert {(f.object, f.pointer) for f in findings} == {
        ("detection-rule/acme/cpu@v1", "/threshold"),
        ("detection-rule/acme/cpu@v1", "/precision_bp"),
    }
    assert {f.code for f in findings} == {"GOVERNANCE_SCHEMA_INVALID"}


# --- modes ------------------------------------------------------------------------------------------------


def test_prod_weaker_than_stage_is_a_mode_regression(settings):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"prod": {"envelope": "warn", "trace_required": False}}
    findings = _findings("modes")
    assert sorted((f.code, f.pointer) for f in findings) == [
        ("GOVERNANCE_MODE_REGRESSION", "/prod/envelope"),
        ("GOVERNANCE_MODE_REGRESSION", "/prod/trace_required"),
    ]


def test_stage_weaker_than_dev_is_a_mode_regression(settings):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"stage": {"learning_min_fidelity": "demo"}}
    findings = _findings("modes")
    assert [(f.code, f.object, f.pointer) for f in findings] == [
        ("GOVERNANCE_MODE_REGRESSION", "mode-matrix/stage", "/stage/learning_min_fidelity")
    ]


# --- fallback consistency ---------------------------------------------------------------------------------


@pytest.fixture
def declarations(monkeypatch):
    monkeypatch.setattr(telemetry, "FIDELITY_DECLARATIONS", dict(telemetry.FIDELITY_DECLARATIONS))
    return telemetry.FIDELITY_DECLARATIONS


def test_a_declared_fallback_without_a_catalogue_reason_or_route_is_inconsistent(declarations):
    declarations["nowhere:page"] = telemetry.FidelityDeclaration(
        "nowhere:page", "degraded", "NOT_A_REASON", "drifted fixture"
    )
    findings = _findings("fallback")
    assert sorted((f.code, f.object, f.pointer) for f in findings) == [
        ("GOVERNANCE_FALLBACK_INCONSISTENT", "fidelity-declaration/nowhere:page", "/reason_code"),
        ("GOVERNANCE_FALLBACK_INCONSISTENT", "fidelity-declaration/nowhere:page", "/route"),
    ]


def test_a_declared_path_that_exists_with_a_catalogue_reason_is_consistent(declarations):
    declarations["readyz"] = telemetry.FidelityDeclaration(
        "readyz", "degraded", "DATABASE_UNAVAILABLE", "fixture"
    )
    assert _findings("fallback") == []


def test_a_ledger_event_with_an_unknown_reason_code_is_inconsistent():
    event = ledger_append(
        type="controlplane.test.thing", subject="t/1", data={}, reason_codes=["NOT_IN_CATALOGUE"]
    )
    findings = [f for f in _findings("ledger") if f.code == "GOVERNANCE_FALLBACK_INCONSISTENT"]
    assert [(f.object, f.pointer) for f in findings] == [(f"ledger/event/{event.seq}", "/reason_codes/0")]


# --- contracts and generated docs --------------------------------------------------------------------------


def test_an_event_type_on_the_chain_without_a_contract_is_named():
    ledger_append(type="controlplane.mystery.happened", subject="m/1", data={})
    findings = [f for f in _findings("ledger") if f.code == "GOVERNANCE_CONTRACT_MISSING"]
    assert [f.object for f in findings] == ["event-type/controlplane.mystery.happened"]


def test_a_stale_generated_document_is_named(monkeypatch, tmp_path):
    from controlplane.identity.management.commands import reasons

    stale = tmp_path / "reason-codes.md"
    stale.write_text("# Reason codes\n\nold\n")
    monkeypatch.setattr(reasons, "DOC", stale)
    findings = _findings("docs")
    assert [(f.code, f.object) for f in findings] == [("GOVERNANCE_DOCS_STALE", "doc/reason-codes.md")]


# --- skills ----------------------------------------------------------------------------------------------


def test_an_installed_skill_that_no_longer_verifies_or_fits_is_named():
    manifest = {**copy.deepcopy(CORE_SKILL), "version": "9.9.9", "requires": {"runtime": ">=99"}}
    Skill.objects.create(
        name="core",
        version="9.9.9",
        publisher="controlplane",
        trusted=True,
        manifest=manifest,
        manifest_hash=manifest_hash(manifest),
    )
    findings = [f for f in _findings("skills") if f.object == "skill/core@9.9.9"]
    assert sorted((f.code, f.pointer) for f in findings) == [
        ("GOVERNANCE_INCOMPATIBLE", "/checks/compatibility"),
        ("GOVERNANCE_SKILL_UNVERIFIED", "/checks/built-in"),
    ]


# --- the registry and the command -------------------------------------------------------------------------


def test_a_crashing_check_is_a_finding_not_a_pass(monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setitem(kernel.CHECKS, "broken", kernel.Check("broken", "fixture", (), broken))
    findings = _findings("broken")
    assert [(f.code, f.object) for f in findings] == [("GOVERNANCE_CHECK_FAILED", "check/broken")]


def test_every_registered_check_declares_the_codes_of_the_catalogue():
    from controlplane.kernel.reasons import CATALOGUE

    assert {"settings", "modes", "fallback", "docs", "stored", "ledger", "skills"} <= set(kernel.CHECKS)
    for check in kernel.CHECKS.values():
        assert set(check.codes) <= set(CATALOGUE), check.name


def test_the_command_exits_0_with_a_summary_and_ledgers_the_run(capsys):
    call_command("governance", "validate")
    assert "ok, no findings" in capsys.readouterr().out
    event = LedgerEvent.objects.get(type="controlplane.governance.validation.completed")
    assert event.data["ok"] is True and event.data["total"] == 0 and event.actor.startswith("cli:")


def test_the_command_exits_1_with_every_finding_as_json(settings, capsys):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {"prod": {"envelope": "warn"}}
    with pytest.raises(SystemExit) as exited:
        call_command("governance", "validate", "--json")
    assert exited.value.code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["by_code"] == {"GOVERNANCE_MODE_REGRESSION": 1}
    assert report["findings"][0]["pointer"] == "/prod/envelope"
    event = LedgerEvent.objects.get(type="controlplane.governance.validation.completed")
    assert event.reason_codes == ["GOVERNANCE_MODE_REGRESSION"] and event.data["ok"] is False


def test_offline_runs_only_the_checks_that_need_no_database_and_ledgers_nothing(capsys):
    call_command("governance", "validate", "--offline")
    out = capsys.readouterr().out
    assert "(docs, fallback, modes, settings): ok" in out
    assert not LedgerEvent.objects.filter(type="controlplane.governance.validation.completed").exists()
    assert all(kernel.CHECKS[name].offline for name in ("docs", "fallback", "modes", "settings"))
    assert not kernel.CHECKS["stored"].offline and checks.RECENT_EVENTS > 0


def test_the_contract_baseline_hides_only_its_own_types_and_only_shrinks(monkeypatch):
    from governance import baseline

    assert "controlplane.ledger.key.activated" in baseline.WITHOUT_CONTRACT
    ledger_append(type="controlplane.ledger.key.activated", subject="k/1", data={})
    assert [f for f in _findings("ledger") if f.code == "GOVERNANCE_CONTRACT_MISSING"] == []
    # an entry that has a contract now must leave the baseline
    monkeypatch.setattr(
        baseline, "WITHOUT_CONTRACT", baseline.WITHOUT_CONTRACT | {"controlplane.intent.received"}
    )
    findings = _findings("docs")
    assert [(f.code, f.pointer) for f in findings] == [
        ("GOVERNANCE_DOCS_STALE", "/WITHOUT_CONTRACT/controlplane.intent.received")
    ]
