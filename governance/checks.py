"""The validation checks the governance app registers (skills register theirs, a plugin registry will too).

Each is a generator of `Finding`s; `manage.py governance validate` runs them all (docs/governance.md):

- `schema`: the mode matrix, every policy profile (stored rows and the shipped contents) and every
  detection rule version validate against their JSON Schemas (GOVERNANCE_SCHEMA_INVALID, naming the object
  and the JSON pointer);
- `fallback`: every declared non-live path and fallback names a catalogue reason and a route that exists;
  the ledger's fidelity vocabulary is the envelope's; recent ledger events carry catalogue codes only
  (GOVERNANCE_FALLBACK_INCONSISTENT);
- `modes`: no environment weaker than a less production-like one (GOVERNANCE_MODE_REGRESSION);
- `contracts`: every `controlplane.*` event type on the chain has a contract (GOVERNANCE_CONTRACT_MISSING)
  and the generated documents are current (GOVERNANCE_DOCS_STALE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.urls import NoReverseMatch, get_resolver

from controlplane.kernel import telemetry
from controlplane.kernel.contracts import LEDGER_PREFIX, REGISTRY
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.governance import MATRIX_SCHEMA, Check, Finding, mode_matrix, mode_regressions
from controlplane.kernel.governance import schema_findings as _schema
from controlplane.kernel.reasons import CATALOGUE
from controlplane.ledger.models import Fidelity, LedgerEvent
from controlplane.policy import content as policy_content
from controlplane.policy import shipped
from controlplane.policy.models import PolicyProfile
from governance import baseline
from incidents.models import DetectionRuleVersion

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
# How many of the newest ledger events the vocabulary check reads (a full walk is `ledger verify`'s job).
RECENT_EVENTS = 5000


def _load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / name).read_text())


def settings_check() -> Iterator[Finding]:
    """The mode matrix and the shipped policy profiles against their schemas (no database)."""
    code = "GOVERNANCE_SCHEMA_INVALID"
    yield from _schema(
        code=code,
        object="settings/CONTROLPLANE_GOVERNANCE_MODES",
        instance=mode_matrix(),
        schema=MATRIX_SCHEMA,
    )
    for name, content in ((shipped.STRICT, shipped.STRICT_CONTENT), (shipped.DEV, shipped.DEV_CONTENT)):
        yield from _profile_findings(f"shipped/{name}", content)


def _profile_findings(ref: str, content: Any) -> Iterator[Finding]:
    code = "GOVERNANCE_SCHEMA_INVALID"
    found = _schema(code=code, object=ref, instance=content, schema=policy_content.SCHEMA, prefix="/content")
    yield from found
    if not found:
        try:  # the rules beyond the schema (monotony, the never-autonomous invariant, catalogue reasons)
            policy_content.profile_content_validate(content)
        except ControlPlaneError as exc:
            yield Finding(code, ref, "/content", f"{exc.code}: {exc.detail}")


def stored_check() -> Iterator[Finding]:
    """Every stored policy profile and detection rule version against its schema."""
    for row in PolicyProfile.objects.order_by("name", "version"):
        yield from _profile_findings(f"policy-profile/{row.ref}", row.content)
    rule_schema = _load("detection-rule.v1.json")
    for version in DetectionRuleVersion.objects.select_related("rule__tenant").order_by("rule_id", "version"):
        ref = f"detection-rule/{version.rule.tenant.slug}/{version.rule.name}@v{version.version}"
        yield from _schema(
            code="GOVERNANCE_SCHEMA_INVALID", object=ref, instance=version.content(), schema=rule_schema
        )


def _route_exists(route: str) -> bool:
    try:
        namespace, _, name = route.rpartition(":")
        resolver = get_resolver()
        for part in filter(None, namespace.split(":")):
            resolver = resolver.namespace_dict[part][1]
        return name in resolver.reverse_dict
    except (KeyError, NoReverseMatch):
        return False


def fallback_check() -> Iterator[Finding]:
    code = "GOVERNANCE_FALLBACK_INCONSISTENT"
    for route, declared in sorted(telemetry.FIDELITY_DECLARATIONS.items()):
        ref = f"fidelity-declaration/{route}"
        if declared.reason_code not in CATALOGUE:
            yield Finding(
                code, ref, "/reason_code", f"{declared.reason_code!r} is not in the reason-code catalogue"
            )
        if not _route_exists(route):
            yield Finding(code, ref, "/route", f"no URL is named {route!r}")
    if tuple(Fidelity.values) != telemetry.FIDELITY_LEVELS:
        yield Finding(
            code,
            "ledger/fidelity",
            "/fidelity",
            f"ledger {list(Fidelity.values)} != envelope {list(telemetry.FIDELITY_LEVELS)}",
        )


def ledger_check() -> Iterator[Finding]:
    """The newest ledger events speak the envelope's vocabulary; every event type has a contract."""
    code = "GOVERNANCE_FALLBACK_INCONSISTENT"
    recent = LedgerEvent.objects.order_by("-seq").values_list("seq", "fidelity", "reason_codes")[
        :RECENT_EVENTS
    ]
    for seq, fidelity, reason_codes in recent:
        if fidelity not in telemetry.FIDELITY_LEVELS:
            yield Finding(
                code, f"ledger/event/{seq}", "/fidelity", f"{fidelity!r} is not an envelope fidelity"
            )
        for index, reason_code in enumerate(reason_codes or []):
            if reason_code not in CATALOGUE:
                yield Finding(
                    code,
                    f"ledger/event/{seq}",
                    f"/reason_codes/{index}",
                    f"{reason_code!r} is not in the catalogue",
                )
    types = (
        LedgerEvent.objects.filter(type__startswith=LEDGER_PREFIX)
        .order_by()
        .values_list("type", flat=True)
        .distinct()
    )
    for event_type in sorted(types):
        if REGISTRY.for_ledger_type(event_type) is None and event_type not in baseline.WITHOUT_CONTRACT:
            yield Finding(
                "GOVERNANCE_CONTRACT_MISSING",
                f"event-type/{event_type}",
                "",
                "no contract describes this event type",
            )


def modes_check() -> Iterator[Finding]:
    yield from mode_regressions(mode_matrix())


def docs_check() -> Iterator[Finding]:
    """The generated documents are what their commands write now; the contract baseline only shrinks."""
    for event_type in sorted(baseline.WITHOUT_CONTRACT):
        if REGISTRY.for_ledger_type(event_type) is not None:
            yield Finding(
                "GOVERNANCE_DOCS_STALE",
                "governance/baseline.py",
                f"/WITHOUT_CONTRACT/{event_type}",
                "has a contract now: remove it from the baseline",
            )
    from controlplane.identity.management.commands import reasons
    from controlplane.ledger.management.commands import contracts

    for module, command in ((reasons, "reasons docs"), (contracts, "contracts docs")):
        path: Path = module.DOC
        if not path.exists() or path.read_text() != module.render():
            yield Finding(
                "GOVERNANCE_DOCS_STALE", f"doc/{path.name}", "", f"stale: run `manage.py {command}`"
            )


CHECKS = (
    Check(
        "settings",
        "The mode matrix and the shipped policy profiles match their JSON Schemas.",
        ("GOVERNANCE_SCHEMA_INVALID",),
        settings_check,
        offline=True,
    ),
    Check(
        "modes",
        "No environment is weaker than a less production-like one.",
        ("GOVERNANCE_MODE_REGRESSION",),
        modes_check,
        offline=True,
    ),
    Check(
        "fallback",
        "Declared non-live paths and fallbacks name catalogue reasons and real routes; one vocabulary.",
        ("GOVERNANCE_FALLBACK_INCONSISTENT",),
        fallback_check,
        offline=True,
    ),
    Check(
        "docs",
        "The generated documents (reason codes, contracts) are current.",
        ("GOVERNANCE_DOCS_STALE",),
        docs_check,
        offline=True,
    ),
    Check(
        "stored",
        "Every stored policy profile and detection rule version matches its JSON Schema.",
        ("GOVERNANCE_SCHEMA_INVALID",),
        stored_check,
    ),
    Check(
        "ledger",
        "Recent ledger events speak the envelope vocabulary; every event type has a contract.",
        ("GOVERNANCE_FALLBACK_INCONSISTENT", "GOVERNANCE_CONTRACT_MISSING"),
        ledger_check,
    ),
)
