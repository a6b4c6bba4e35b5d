"""The governance console page (mode matrix, the toggle, last validation and preflight, enforcement
metrics and fidelity mix as SVG charts beside their tables), the dashboard's drift panel and the
page-wide banner while enforcement is rolled back to warn."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from controlplane.identity.scope import is_platform_principal
from controlplane.kernel import charts
from controlplane.kernel import governance as kernel
from controlplane.kernel.pages import capability_required, render_page
from governance import selectors

READ = "governance.read"


def _tenant(request: HttpRequest) -> str | None:
    principal = request.console_principal
    return None if is_platform_principal(principal) else principal.tenant.slug


@require_GET
@capability_required(READ)
def page(request: HttpRequest) -> HttpResponse:
    """Everything `GET /api/v1/governance/` says, drawn."""
    tenant = _tenant(request)
    overview = selectors.governance_overview(tenant=tenant)
    preflight = overview["last_preflight"]
    if preflight is not None and tenant is not None:
        preflight = {
            **preflight,
            "by_tenant": {k: v for k, v in preflight["by_tenant"].items() if k == tenant},
        }
    counts = overview["counts"]
    keys = ("refused", "would_refuse")
    context: dict[str, Any] = {
        **overview,
        "last_preflight": preflight,
        "environments": kernel.ENVIRONMENTS,
        "dimensions": kernel.DIMENSIONS,
        "matrix_rows": [
            (dimension, [overview["matrix"].get(env, {}).get(dimension) for env in kernel.ENVIRONMENTS])
            for dimension in kernel.DIMENSIONS
        ],
        "current_environment": overview["attestation"]["environment"],
        "by_code_chart": charts.bars(
            list(counts["by_code"].items()), keys=keys, title="Refusals and would-have-refused by reason code"
        ),
        "by_day_chart": charts.columns(
            list(counts["by_day"].items()), keys=keys, title="Refusals and would-have-refused per day"
        ),
        "fidelity_chart": charts.bars(
            [(level, {"events": count}) for level, count in overview["fidelity_mix"].items()],
            keys=("events",),
            title="Fidelity of the newest ledger events",
        ),
        "drift_chart": charts.columns(
            [(str(d["seq"]), {"findings": d["findings"]}) for d in overview["drift"]],
            keys=("findings",),
            title="Validation findings per run (drift)",
        ),
    }
    return render_page(request, "governance/page.html", "governance", context)


def panel_context(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's drift panel: findings of the newest validation runs, from the ledger; the mode."""
    drift = selectors.drift_series(limit=14)
    toggle, source = kernel.enforcement_toggle()
    return {
        "drift": drift,
        "latest": drift[-1] if drift else None,
        "drift_chart": charts.columns(
            [(str(d["seq"]), {"findings": d["findings"]}) for d in drift],
            keys=("findings",),
            title="Validation findings per run",
            height=90,
        ),
        "enforcement": toggle,
        "enforcement_source": source,
        "attestation": _attestation(),
    }


def _attestation() -> dict[str, Any]:
    from governance.services import attestation_data

    return attestation_data()


def banner_context(request: HttpRequest) -> dict[str, Any]:
    """Shout while the rollback toggle holds every check in warn."""
    toggle, source = kernel.enforcement_toggle()
    if toggle != kernel.WARN:
        return {"enforcement_warn": None}
    return {"enforcement_warn": {"source": source, **selectors.enforcement_status()}}
