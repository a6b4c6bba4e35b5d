"""Reads of governance for the API, the console page, the dashboard panels and /readyz."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from controlplane.kernel import governance as kernel
from controlplane.ledger.models import LedgerEvent
from governance.models import EnforcementCount, EnforcementToggle

VALIDATION = "controlplane.governance.validation.completed"
PREFLIGHT = "controlplane.governance.preflight.completed"


def last_event(event_type: str) -> LedgerEvent | None:
    return (
        LedgerEvent.objects.filter(type=event_type).defer("canonical", "provenance").order_by("-seq").first()
    )


def enforcement_status() -> dict[str, Any]:
    """The toggle now, where it came from, and the row's last change (who, why, which ledger event)."""
    mode, source = kernel.enforcement_toggle()
    row = EnforcementToggle.objects.filter(pk="enforcement").first()
    return {
        "mode": mode,
        "source": source,
        "changed_by": row.changed_by if row else None,
        "changed_at": row.changed_at.isoformat() if row else None,
        "reason": row.reason if row else None,
        "event_seq": row.event_seq if row else None,
    }


def counts(*, days: int = 14, tenant: str | None = None) -> dict[str, Any]:
    """Refusals and would-have-refused of the last `days`, by code, by tenant and by day (oldest first)."""
    since = timezone.now().date() - dt.timedelta(days=days - 1)
    rows = EnforcementCount.objects.filter(day__gte=since)
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    by_code: dict[str, dict[str, int]] = defaultdict(lambda: {"refused": 0, "would_refuse": 0})
    by_tenant: dict[str, dict[str, int]] = defaultdict(lambda: {"refused": 0, "would_refuse": 0})
    by_day: dict[str, dict[str, int]] = {
        (since + dt.timedelta(days=n)).isoformat(): {"refused": 0, "would_refuse": 0} for n in range(days)
    }
    for row in rows.values("day", "outcome", "code", "tenant").annotate(total=Sum("count")):
        by_code[row["code"]][row["outcome"]] += row["total"]
        by_tenant[row["tenant"]][row["outcome"]] += row["total"]
        by_day[row["day"].isoformat()][row["outcome"]] += row["total"]
    return {
        "by_code": dict(sorted(by_code.items())),
        "by_tenant": dict(sorted(by_tenant.items())),
        "by_day": by_day,
    }


def fidelity_mix(*, limit: int = 5000, tenant: str | None = None) -> dict[str, int]:
    """The fidelity of the newest `limit` ledger events (what was ingested and recorded)."""
    events = LedgerEvent.objects.order_by("-seq")
    if tenant is not None:
        events = events.filter(tenant=tenant)
    mix = {level: 0 for level in ("live", "degraded", "demo", "simulated")}
    for fidelity in events.values_list("fidelity", flat=True)[:limit]:
        mix[fidelity] = mix.get(fidelity, 0) + 1
    return mix


def drift_series(*, limit: int = 30) -> list[dict[str, Any]]:
    """The findings of the newest validation runs, oldest first: the drift trend the dashboard draws."""
    events = LedgerEvent.objects.filter(type=VALIDATION).only("seq", "time", "data").order_by("-seq")[:limit]
    return [
        {"seq": e.seq, "time": e.time.isoformat(), "findings": e.data.get("total", 0), "ok": e.data.get("ok")}
        for e in reversed(list(events))
    ]


def governance_overview(*, tenant: str | None = None) -> dict[str, Any]:
    """Everything the governance page and `GET /api/v1/governance/` show."""
    from governance.services import attestation_data

    validation, preflight = last_event(VALIDATION), last_event(PREFLIGHT)
    return {
        "attestation": attestation_data(),
        "matrix": kernel.mode_matrix(),
        "enforcement": enforcement_status(),
        "last_validation": _event(validation),
        "last_preflight": _event(preflight),
        "counts": counts(tenant=tenant),
        "fidelity_mix": fidelity_mix(tenant=tenant),
        "drift": drift_series(),
    }


def _event(event: LedgerEvent | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {"seq": event.seq, "time": event.time.isoformat(), "actor": event.actor, **event.data}
