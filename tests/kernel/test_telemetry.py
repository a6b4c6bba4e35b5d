"""The telemetry envelope's kernel: translators, response meta, fidelity declarations (pure)."""

from __future__ import annotations

import pytest

from controlplane.kernel import telemetry
from controlplane.kernel.context import request_context


def test_each_known_dialect_is_translated_and_named():
    cases = {
        "camel-fallback": {"fallbackUsed": True, "fallbackReason": "database-unavailable"},
        "snake-fallback": {"fallback_reason": "DATABASE_UNAVAILABLE"},
        "fidelity-level": {"fidelity_level": "partial"},
        "degraded-flag": {"degraded": True},
        "otel-genai": {"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3},
    }
    for name, payload in cases.items():
        translation = telemetry.telemetry_translate(payload)
        assert translation.translators == [name] and translation.unknown == []
    assert telemetry.telemetry_translate(cases["camel-fallback"]).envelope["fallback"]["reason_code"] == (
        "DATABASE_UNAVAILABLE"
    )
    assert telemetry.telemetry_translate(cases["fidelity-level"]).envelope == {"fidelity": "degraded"}
    assert telemetry.telemetry_translate(cases["otel-genai"]).envelope == {
        "genai": {"model": "m", "input_tokens": 3}
    }


def test_canonical_fields_need_no_translator_and_unknown_ones_are_listed():
    translation = telemetry.telemetry_translate({"fidelity": "live", "shinyField": 1})
    assert translation.translator == "canonical" and translation.unknown == ["shinyField"]


def test_a_translator_claiming_anothers_field_is_refused():
    with pytest.raises(ValueError):
        telemetry.register_translator(
            telemetry.Translator("thief", "x", frozenset({"degraded"}), lambda fields: {})
        )


def test_meta_carries_the_lowest_fidelity_marked_and_the_refusals_code():
    with request_context(request_id="r-1", traceparent=None):
        telemetry.telemetry_reset()
        telemetry.telemetry_mark(fidelity="degraded")
        telemetry.telemetry_mark(fidelity="live")
        meta = telemetry.response_meta(route=None, body={"detail": "x", "code": "NOT_FOUND"})
    assert (
        meta["fidelity"] == "degraded"
        and meta["reason_codes"] == ["NOT_FOUND"]
        and meta["request_id"] == "r-1"
    )
    assert telemetry.envelope_errors(meta) == []


def test_a_declared_route_says_its_fidelity_without_the_view(monkeypatch):
    monkeypatch.setattr(telemetry, "FIDELITY_DECLARATIONS", {})
    telemetry.declare_fidelity(
        "x-cache", fidelity="degraded", reason_code="DATABASE_UNAVAILABLE", why="t", fallback_from="x-live"
    )
    telemetry.telemetry_reset()
    meta = telemetry.response_meta(route="x-cache", body={})
    assert meta["fidelity"] == "degraded"
    assert meta["fallback"] == {
        "used": True,
        "from": "x-live",
        "to": "x-cache",
        "reason_code": "DATABASE_UNAVAILABLE",
    }
    with pytest.raises(ValueError):
        telemetry.declare_fidelity(
            "x-live", fidelity="live", reason_code="NOT_FOUND", why="live is the default"
        )


def test_a_bare_list_becomes_results_with_meta_and_nothing_stays_nothing():
    assert telemetry.with_meta([1], {"m": 1}) == {"results": [1], "meta": {"m": 1}}
    assert telemetry.with_meta(None, {"m": 1}) is None
