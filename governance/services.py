"""Governance writes: the rollback toggle, the counters, the start-up attestation, validation and preflight
results, model-call telemetry. Every state change appends its ledger event in the same transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from controlplane.identity.models import Principal, PrincipalKind
from controlplane.identity.scope import platform_authorize
from controlplane.kernel import governance as kernel
from controlplane.kernel import telemetry
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from controlplane.policy.selectors import active_profile
from controlplane.runtime.models import Intent
from governance.capabilities import PLATFORM_GOVERNANCE
from governance.models import EnforcementCount, EnforcementMode, EnforcementToggle

SUBJECT = "governance/enforcement"


def _actor_ref(actor: Principal | str | None) -> str:
    if isinstance(actor, Principal):
        return actor.ref
    return actor or "system"


# --- the rollback toggle ---------------------------------------------------------------------------------


def enforcement_source() -> str | None:
    """The runtime toggle for the kernel's reader: `warn`, `enforce`, or None when unset (env decides)."""
    mode = EnforcementToggle.objects.filter(pk="enforcement").values_list("mode", flat=True).first()
    return mode or None


@transaction.atomic
def enforcement_set(*, mode: str, actor: Principal | str | None, reason: str) -> EnforcementToggle:
    """Set the rollback toggle (`warn` | `enforce`) or `clear` it (the environment variable decides again),
    effective in every process within ENFORCEMENT_CACHE_SECONDS, with no redeploy.
    Ledger: `controlplane.governance.enforcement.changed` with the previous and new values and the reason.
    Needs `platform.governance.manage` (PLATFORM_SCOPE_REQUIRED) and a reason (GOVERNANCE_REASON_REQUIRED);
    an unknown mode is GOVERNANCE_ENFORCEMENT_INVALID. Setting the value it has writes nothing."""
    platform_authorize(
        actor=actor, capability=PLATFORM_GOVERNANCE, detail="the enforcement toggle is platform-wide"
    )
    if mode not in (*EnforcementMode.values, "clear"):
        raise ControlPlaneError("GOVERNANCE_ENFORCEMENT_INVALID", f"unknown enforcement mode {mode!r}")
    if not (reason or "").strip():
        raise ControlPlaneError("GOVERNANCE_REASON_REQUIRED")
    toggle, _ = EnforcementToggle.objects.select_for_update().get_or_create(pk="enforcement")
    new = "" if mode == "clear" else mode
    if toggle.mode == new:
        return toggle
    previous = toggle.mode
    now = timezone.now()
    actor_ref = _actor_ref(actor)
    toggle.mode, toggle.reason, toggle.changed_by, toggle.changed_at = new, reason, actor_ref, now
    event = ledger_append(
        type="controlplane.governance.enforcement.changed",
        subject=SUBJECT,
        data={
            "mode": new or None,
            "previous": previous or None,
            "env": (getattr(settings, "CONTROLPLANE_ENFORCEMENT", "") or None),
            "reason": reason,
        },
        actor=actor_ref,
        time=now,
    )
    toggle.event_seq = event.seq
    toggle.save()
    transaction.on_commit(kernel.enforcement_forget)
    return toggle


# --- counters -------------------------------------------------------------------------------------------

_COUNT_SQL = (
    "INSERT INTO {table} (day, outcome, dimension, code, tenant, count) VALUES (%s, %s, %s, %s, %s, 1) "
    "ON CONFLICT (day, outcome, dimension, code, tenant) DO UPDATE SET count = {table}.count + 1"
)


def enforcement_count(outcome: str, dimension: str, code: str, tenant: str) -> None:
    """Count one refusal or would-have-refused (the kernel's gate calls it): one upsert statement, in the
    caller's transaction if it has one (gates run before the write transaction opens)."""
    table = connection.ops.quote_name(EnforcementCount._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            _COUNT_SQL.format(table=table), [timezone.now().date(), outcome, dimension, code, tenant or ""]
        )


# --- attestation ------------------------------------------------------------------------------------------

_attested = threading.Event()


def attestation_data() -> dict[str, Any]:
    """What the start-up line prints and the attestation ledgers: mode, profile, toggle."""
    environment = settings.CONTROLPLANE_ENV
    profile = active_profile(environment=environment)
    toggle, source = kernel.enforcement_toggle()
    return {
        "environment": environment,
        "modes": kernel.mode_matrix().get(environment, {}),
        "profile": profile.ref if profile else None,
        "profile_hash": profile.content_hash if profile else None,
        "enforcement": toggle,
        "enforcement_source": source,
    }


def governance_banner() -> str:
    """The start-up line's governance part: the toggle (LOUD when rolled back to warn) and the modes."""
    try:
        toggle, source = kernel.enforcement_toggle()
    except Exception as exc:  # no table yet: the configured value, said so
        return f"enforcement=unavailable ({type(exc).__name__})"
    modes = kernel.mode_matrix().get(settings.CONTROLPLANE_ENV, {})
    effective = ",".join(f"{d}:{kernel.effective_mode(d)}" for d in kernel.ENFORCED_DIMENSIONS)
    loud = " ENFORCEMENT ROLLED BACK TO WARN" if toggle == kernel.WARN else ""
    return (
        f"enforcement={toggle}({source}){loud} modes={effective} "
        f"trace_required={modes.get('trace_required')} "
        f"learning_min_fidelity={modes.get('learning_min_fidelity')}"
    )


def mode_attest(*, force: bool = False) -> bool:
    """Ledger `controlplane.governance.mode.attested` (the environment's modes, the active profile's hash,
    the toggle) once per process, at start-up. True when it wrote the event."""
    if _attested.is_set() and not force:
        return False
    data = {**attestation_data(), "process": f"{socket.gethostname()}:{os.getpid()}"}
    with transaction.atomic():
        ledger_append(
            type="controlplane.governance.mode.attested",
            subject=f"governance/mode/{data['environment']}",
            data=data,
        )
    _attested.set()
    return True


# --- validation -----------------------------------------------------------------------------------------

FINDINGS_LEDGERED = 100  # the first findings go on the chain; the counts cover all of them


@transaction.atomic
def validation_record(*, result: kernel.ValidationResult, actor: Principal | str | None) -> int:
    """Ledger a validation run (`controlplane.governance.validation.completed`); returns its seq. The
    dashboard's drift panel and the console page read these events."""
    event = ledger_append(
        type="controlplane.governance.validation.completed",
        subject="governance/validation",
        data={
            "ok": result.ok,
            "checks": list(result.checks),
            "by_code": result.by_code(),
            "findings": [f.as_dict() for f in result.findings[:FINDINGS_LEDGERED]],
            "total": len(result.findings),
        },
        actor=_actor_ref(actor),
        reason_codes=sorted(result.by_code()),
    )
    return event.seq


def governance_validate(
    *, actor: Principal | str | None, record: bool = True, only: list[str] | None = None
) -> kernel.ValidationResult:
    """Run the registered checks (all, or those named); ledger the result when `record`."""
    result = kernel.validate(only=only)
    if record:
        validation_record(result=result, actor=actor)
    return result


@dataclass(frozen=True)
class SinceWindow:
    start: dt.datetime
    label: str


def since_parse(value: str, *, now: dt.datetime | None = None) -> SinceWindow:
    """`7d`, `24h`, `30m` -> the start of the window (VALIDATION_FAILED otherwise)."""
    units = {"d": 86400, "h": 3600, "m": 60}
    raw = (value or "").strip()
    if len(raw) < 2 or raw[-1] not in units or not raw[:-1].isdigit() or int(raw[:-1]) <= 0:
        raise ControlPlaneError(
            "VALIDATION_FAILED", f"--since takes a count and a unit (7d, 24h, 30m), not {value!r}"
        )
    seconds = int(raw[:-1]) * units[raw[-1]]
    return SinceWindow((now or timezone.now()) - dt.timedelta(seconds=seconds), raw)


# --- model-call telemetry ----------------------------------------------------------------------------------

# The endpoint's own fields; the envelope's canonical fields pass too, dialect fields go through translators.
MODEL_CALL_FIELDS = frozenset(
    {"trace_id", "intent", "prompt_sha256", "response_sha256", "prompt", "response", "tool_calls"}
)
_HEX64 = frozenset("0123456789abcdef")
_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,12})?")


def _sha256_of(*, digest: Any, text: Any, name: str) -> str:
    if isinstance(text, str):
        return hashlib.sha256(text.encode()).hexdigest()
    if isinstance(digest, str) and len(digest) == 64 and set(digest) <= _HEX64:
        return digest
    raise ControlPlaneError("VALIDATION_FAILED", f"{name}_sha256 is 64 lowercase hex digits (or send {name})")


def _nonnegative(value: Any, name: str, *, required: bool) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ControlPlaneError("VALIDATION_FAILED", f"{name} is a non-negative integer")
    return value


@dataclass(frozen=True)
class ModelCallReport:
    seq: int
    translator: str
    warnings: tuple[str, ...]
    data: dict[str, Any]


def model_call_report(*, principal: Principal, payload: dict[str, Any]) -> ModelCallReport:
    """An agent reports one model call it made for a trace (`controlplane.telemetry.model_call.reported`,
    on the trace: the trace explorer shows it under the intent it names).

    The payload may speak a known dialect (OpenTelemetry `gen_ai.*`, `fallbackUsed`, ...): translators map
    it into the envelope and the event names the translator that ran. A field no translator knows is
    TELEMETRY_NONCANONICAL in enforce mode; in warn mode it is dropped and counted (would have refused).
    Prompt and response are stored as SHA-256 only; their text is hashed and forgotten unless the tenant
    is in CONTROLPLANE_TELEMETRY_TEXT_TENANTS. Only an agent reports (TELEMETRY_AGENT_REQUIRED); an
    `intent` must be one of its tenant's, on that trace (NOT_FOUND otherwise)."""
    if principal.kind != PrincipalKind.AGENT:
        raise ControlPlaneError("TELEMETRY_AGENT_REQUIRED", f"{principal.ref} is not an agent")
    tenant = principal.tenant.slug
    own = {key: value for key, value in payload.items() if key in MODEL_CALL_FIELDS}
    translation = telemetry.telemetry_translate(
        {key: value for key, value in payload.items() if key not in MODEL_CALL_FIELDS}
    )
    warnings: list[str] = []
    if translation.unknown:
        kernel.gate(
            "envelope",
            "TELEMETRY_NONCANONICAL",
            tenant=tenant,
            detail=f"fields no translator knows: {', '.join(translation.unknown[:10])}",
        )
        warnings.append("TELEMETRY_NONCANONICAL")
    trace_id = str(own.get("trace_id") or "").lower()
    if len(trace_id) != 32 or not set(trace_id) <= _HEX64 or trace_id == "0" * 32:
        raise ControlPlaneError("TRACE_ID_INVALID", "trace_id is 32 lowercase hex digits, not all zero")
    intent_id = own.get("intent") or None
    if (
        intent_id is not None
        and not Intent.objects.filter(pk=str(intent_id), tenant=principal.tenant, trace_id=trace_id).exists()
    ):
        raise ControlPlaneError("NOT_FOUND", f"no intent {intent_id} of tenant {tenant} on trace {trace_id}")
    genai = translation.envelope.get("genai")
    if not isinstance(genai, dict) or not str(genai.get("model") or "").strip():
        raise ControlPlaneError("VALIDATION_FAILED", "genai.model (or gen_ai.request.model) is required")
    tool_calls = own.get("tool_calls") or []
    if not isinstance(tool_calls, list) or not all(isinstance(t, str) and t for t in tool_calls):
        raise ControlPlaneError("VALIDATION_FAILED", "tool_calls is a list of tool names")
    cost = genai.get("cost")
    if cost is not None and not (isinstance(cost, str) and _DECIMAL.fullmatch(cost)):
        raise ControlPlaneError(
            "VALIDATION_FAILED", "genai.cost is a decimal string (no floats: it is signed)"
        )
    data: dict[str, Any] = {
        "trace_id": trace_id,
        "intent": str(intent_id) if intent_id else None,
        "model": str(genai["model"])[:200],
        "system": str(genai["system"])[:100] if genai.get("system") else None,
        "input_tokens": _nonnegative(genai.get("input_tokens"), "genai.input_tokens", required=True),
        "output_tokens": _nonnegative(genai.get("output_tokens"), "genai.output_tokens", required=True),
        "cost": cost,
        "currency": str(genai["currency"]) if genai.get("currency") else None,
        "latency_ms": _nonnegative(genai.get("latency_ms"), "genai.latency_ms", required=False),
        "prompt_sha256": _sha256_of(digest=own.get("prompt_sha256"), text=own.get("prompt"), name="prompt"),
        "response_sha256": _sha256_of(
            digest=own.get("response_sha256"), text=own.get("response"), name="response"
        ),
        "tool_calls": tool_calls[:100],
        "translator": translation.translator,
        "warnings": warnings,
    }
    if tenant in getattr(settings, "CONTROLPLANE_TELEMETRY_TEXT_TENANTS", []):
        data.update(prompt=own.get("prompt"), response=own.get("response"))
    fidelity = translation.envelope.get("fidelity", telemetry.LIVE)
    if fidelity not in telemetry.FIDELITY_LEVELS:
        raise ControlPlaneError(
            "VALIDATION_FAILED", f"fidelity is one of {', '.join(telemetry.FIDELITY_LEVELS)}"
        )
    fallback = translation.envelope.get("fallback")
    reason_codes = (
        [fallback["reason_code"]] if isinstance(fallback, dict) and fallback.get("reason_code") else []
    )
    with transaction.atomic():
        event = ledger_append(
            type="controlplane.telemetry.model_call.reported",
            subject=f"trace/{trace_id}",
            data=data,
            actor=principal.ref,
            tenant=tenant,
            fidelity=fidelity,
            reason_codes=reason_codes + warnings,
            traceparent=f"00-{trace_id}-{os.urandom(8).hex()}-01",
        )
    return ModelCallReport(event.seq, translation.translator, tuple(warnings), data)
