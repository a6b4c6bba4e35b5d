"""The governance app's contracts: the events it writes (docs/contracts.md is generated from these)."""

from __future__ import annotations

from controlplane.kernel.contracts import CODES, COUNT, HEX64, TEXT, TRACE_ID, event_contract, obj

OWNER = "governance"
COVERS = ("controlplane.governance.", "controlplane.telemetry.")

_MODE = {"enum": ["warn", "enforce", None]}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_FINDING = obj({"code": TEXT, "object": TEXT, "pointer": {"type": "string"}, "detail": {"type": "string"}})
_BY_CODE = {"type": "object", "additionalProperties": COUNT}
_MODES_ROW = {"type": "object"}

CONTRACTS = [
    event_contract(
        "governance.enforcement.changed",
        OWNER,
        "The rollback toggle changed (`mode` null: cleared, CONTROLPLANE_ENFORCEMENT decides). Subject "
        "`governance/enforcement`.",
        obj({"mode": _MODE, "previous": _MODE, "env": _NULLABLE_TEXT, "reason": TEXT}),
        "governance.services.enforcement_set",
    ),
    event_contract(
        "governance.mode.attested",
        OWNER,
        "A process started: its environment's modes, the active profile and its hash, the toggle.",
        obj(
            {
                "environment": TEXT,
                "modes": _MODES_ROW,
                "profile": _NULLABLE_TEXT,
                "profile_hash": {"oneOf": [{"type": "null"}, HEX64]},
                "enforcement": {"enum": ["warn", "enforce"]},
                "enforcement_source": {"enum": ["runtime", "env", "default"]},
                "process": TEXT,
            }
        ),
        "governance.services.mode_attest",
    ),
    event_contract(
        "governance.validation.completed",
        OWNER,
        "`manage.py governance validate` ran: the checks, the findings (the first 100) and their counts.",
        obj(
            {
                "ok": {"type": "boolean"},
                "checks": {"type": "array", "items": TEXT},
                "by_code": _BY_CODE,
                "findings": {"type": "array", "items": _FINDING},
                "total": COUNT,
            }
        ),
        "governance.services.validation_record",
    ),
    event_contract(
        "governance.preflight.completed",
        OWNER,
        "A preflight of a candidate profile: the rejection ratio (basis points) by code and tenant, the "
        "validation result, whether the rollback toggle was exercised, and `ready`.",
        obj(
            {
                "profile": TEXT,
                "profile_hash": HEX64,
                "environment": TEXT,
                "since": TEXT,
                "ready": {"type": "boolean"},
                "decisions": COUNT,
                "rejections": COUNT,
                "rejection_ratio_bp": COUNT,
                "max_rejection_ratio_bp": COUNT,
                "by_code": _BY_CODE,
                "by_tenant": _BY_CODE,
                "sources": {"type": "object", "additionalProperties": COUNT},
                "validation_ok": {"type": "boolean"},
                "validation_codes": CODES,
                "rollback_exercised": {"type": "boolean"},
                "reasons": {"type": "array", "items": TEXT},
            }
        ),
        "governance.preflight.preflight_run",
    ),
    event_contract(
        "telemetry.model_call.reported",
        OWNER,
        "An agent reported a model call it made for a trace: hashes of the prompt and response (their text "
        "only if the tenant opted in), model, tokens, cost, latency, tool calls. Subject `trace/<trace id>`.",
        obj(
            {
                "trace_id": TRACE_ID,
                "intent": _NULLABLE_TEXT,
                "model": TEXT,
                "system": _NULLABLE_TEXT,
                "input_tokens": COUNT,
                "output_tokens": COUNT,
                "cost": _NULLABLE_TEXT,
                "currency": _NULLABLE_TEXT,
                "latency_ms": {"oneOf": [{"type": "null"}, COUNT]},
                "prompt_sha256": HEX64,
                "response_sha256": HEX64,
                "tool_calls": {"type": "array", "items": TEXT},
                "translator": TEXT,
                "warnings": CODES,
            },
            {"prompt": _NULLABLE_TEXT, "response": _NULLABLE_TEXT},
        ),
        "governance.services.model_call_report",
    ),
]
