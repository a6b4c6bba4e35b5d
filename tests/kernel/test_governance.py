"""The kernel's governance pieces, pure: the mode matrix's order, the toggle's precedence and cache."""

from __future__ import annotations

import pytest

from controlplane.kernel import governance as kernel


@pytest.fixture(autouse=True)
def _fresh():
    kernel.enforcement_forget()
    yield
    kernel.enforcement_forget()


def test_the_default_matrix_is_ordered_and_valid():
    assert kernel.mode_regressions(kernel.DEFAULT_MATRIX) == []
    assert (
        kernel.schema_findings(
            code="X", object="m", instance=kernel.DEFAULT_MATRIX, schema=kernel.MATRIX_SCHEMA
        )
        == []
    )


def test_every_dimension_is_compared_weakest_first():
    matrix = {env: dict(row) for env, row in kernel.DEFAULT_MATRIX.items()}
    matrix["prod"]["signing"] = "require-signed"
    matrix["stage"]["signing"] = "require-valid-signature"
    assert [(f.object, f.pointer) for f in kernel.mode_regressions(matrix)] == [
        ("mode-matrix/prod", "/prod/signing")
    ]


def test_the_runtime_source_wins_over_the_environment_variable(settings, monkeypatch):
    settings.CONTROLPLANE_ENFORCEMENT = "warn"
    monkeypatch.setattr(kernel, "_override_source", [lambda: "enforce"])
    assert kernel.enforcement_toggle() == ("enforce", "runtime")
    monkeypatch.setattr(kernel, "_override_source", [lambda: None])
    kernel.enforcement_forget()
    assert kernel.enforcement_toggle() == ("warn", "env")


def test_an_unreadable_source_falls_back_to_the_configured_value(settings, monkeypatch):
    def broken():
        raise RuntimeError("database down")

    settings.CONTROLPLANE_ENFORCEMENT = ""
    monkeypatch.setattr(kernel, "_override_source", [broken])
    assert kernel.enforcement_toggle() == ("enforce", "default")


def test_the_toggle_is_cached_until_forgotten(settings, monkeypatch):
    values = iter(["warn", "enforce"])
    monkeypatch.setattr(kernel, "_override_source", [lambda: next(values)])
    assert kernel.enforcement_toggle()[0] == "warn"
    assert kernel.enforcement_toggle()[0] == "warn"  # within the second: no second read
    kernel.enforcement_forget()
    assert kernel.enforcement_toggle()[0] == "enforce"


def test_warn_in_the_matrix_stays_warn_and_only_enforced_dimensions_gate(settings):
    settings.CONTROLPLANE_GOVERNANCE_MODES = {}
    assert kernel.effective_mode("envelope", environment="dev") == "warn"
    assert kernel.effective_mode("envelope", environment="prod") == "enforce"
    with pytest.raises(ValueError):
        kernel.effective_mode("signing")


def test_validate_names_an_unknown_check():
    with pytest.raises(ValueError):
        kernel.validate(only=["no-such-check"])
