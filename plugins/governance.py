"""Governance findings of the plugins registry, for `manage.py governance validate` (its check registry
registers `plugin_findings`; the plugins app does not know that registry).

Each finding names a plugin, a reason code from the catalogue and what is wrong:

- PLUGIN_MANIFEST_INVALID: the stored manifest no longer passes the plugin-manifest/v1 schema and checks;
- PLUGIN_INCOMPATIBLE: the manifest's `compatible_contracts.runtime` excludes this runtime's contract;
- PLUGIN_DEPENDENCY_MISSING: a `depends_on` entry is not registered in the plugin's reach (its tenant's
  own plugins and the shared ones) or its version is outside the declared range;
- PLUGIN_DEPENDENCY_CYCLE: the registered graph holds a cycle (registration refuses one; this catches
  what came in another way).

Pure reads: nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.governance import Check
from controlplane.kernel.governance import Finding as GovernanceFinding
from plugins.manifest import dependency_problems, find_cycle, incompatibility, manifest_validate
from plugins.models import Plugin


@dataclass(frozen=True)
class Finding:
    code: str
    subject: str  # plugin/<name>
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def plugin_findings() -> list[Finding]:
    """Every finding over the registered plugins, in plugin-name order."""
    plugins = list(Plugin.objects.order_by("name").values_list("name", "tenant_id", "version", "manifest"))
    findings: list[Finding] = []
    for name, tenant_id, _, manifest in plugins:
        subject = f"plugin/{name}"
        try:
            manifest_validate(manifest)
        except ControlPlaneError as error:
            findings.append(Finding(error.code, subject, error.detail))
            continue
        if reason := incompatibility(manifest):
            findings.append(Finding("PLUGIN_INCOMPATIBLE", subject, reason))
        reach = {n: v for n, t, v, _ in plugins if t is None or t == tenant_id}
        findings += [
            Finding("PLUGIN_DEPENDENCY_MISSING", subject, problem)
            for problem in dependency_problems(manifest, reach)
        ]
    graph = {
        name: [d["name"] for d in (manifest or {}).get("depends_on", [])] for name, _, _, manifest in plugins
    }
    if cycle := find_cycle(graph):
        findings.append(Finding("PLUGIN_DEPENDENCY_CYCLE", f"plugin/{cycle[0]}", " -> ".join(cycle)))
    return findings


# `manage.py governance validate` (kernel check registry): each plugin finding as a governance finding, the
# plugin's own code kept in the detail. A manifest that no longer validates is a schema finding; the rest
# (contracts, dependencies, cycles) are compatibility findings.
def governance_findings() -> Iterator[GovernanceFinding]:
    for finding in plugin_findings():
        schema = finding.code == "PLUGIN_MANIFEST_INVALID"
        code = "GOVERNANCE_SCHEMA_INVALID" if schema else "GOVERNANCE_INCOMPATIBLE"
        yield GovernanceFinding(code, finding.subject, "/manifest", f"{finding.code}: {finding.detail}")


CHECK = Check(
    "plugins",
    "Every registered plugin's manifest validates, is compatible with the runtime's contracts, and its "
    "dependencies are registered in its reach at versions in range, with no cycle.",
    ("GOVERNANCE_SCHEMA_INVALID", "GOVERNANCE_INCOMPATIBLE"),
    governance_findings,
)
