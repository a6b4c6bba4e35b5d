"""Governance writes: the rollback toggle, the counters, the start-up attestation, validation and preflight
results, model-call telemetry. Every state change appends its ledger event in the same transaction."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.identity.scope import platform_authorize
from controlplane.kernel import governance as kernel
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
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
    """Count one refusal or would-have-refused (the kernel's gate calls it). One upsert statement; it is
    a metric, not a decision, so a failure to count is logged by the database layer, not raised."""
    table = connection.ops.quote_name(EnforcementCount._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            _COUNT_SQL.format(table=table), [timezone.now().date(), outcome, dimension, code, tenant or ""]
        )


# --- attestation ------------------------------------------------------------------------------------------

_attested = threading.Event()


def attestation_data() -> dict[str, Any]:
    """What the start-up line prints and the attestation ledgers: mode, profile, toggle."""
    from controlplane.policy.selectors import active_profile

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


def governance_validate(*, actor: Principal | str | None, record: bool = True) -> kernel.ValidationResult:
    """Run every registered check; ledger the result when `record`."""
    result = kernel.validate()
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
