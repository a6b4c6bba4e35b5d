"""The plugin manifest (plugin-manifest/v1): its JSON Schema, the supervision defaults, dependency checks.

Pure functions: no database. Registration (`plugins.services.plugin_register`) and the governance findings
(`plugins.governance.plugin_findings`) use the same checks, so a manifest the registry refuses is the
manifest governance reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from controlplane.kernel.errors import ControlPlaneError
from skills.verification import RUNTIME_CONTRACT_VERSION

NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"  # as runner names are (a runner plugin provides a runner by name)

# Supervision parameters and their defaults; every one is tunable per plugin (manifest `supervision`).
# Anchors: OTP supervisors (intensity/period), Kubernetes probes (1 s timeout) and restart back-off (10 s
# doubling to 5 min, reset after 10 min running cleanly), supervisord (BACKOFF -> FATAL).
TUNING_DEFAULTS: dict[str, int] = {
    "missed_heartbeats": 3,  # intervals without a heartbeat before `crashed`
    "probe_timeout_seconds": 1,
    "restart_intensity": 3,  # more restarts than this within restart_period_seconds is a crash loop
    "restart_period_seconds": 300,
    "backoff_initial_seconds": 10,
    "backoff_max_seconds": 300,
    "backoff_reset_seconds": 600,  # healthy this long resets the back-off
    "signature_violations": 1,  # refused heartbeats before quarantine
    "flap_changes": 3,  # probe answer changes within the kept probes that count as flapping
}
PROBES_KEPT = 6
RESERVED = {"health", "reviews"}  # paths under /api/v1/plugins/

KINDS = ["runner", "signal_source", "chat_bridge", "advisory"]

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://controlplane.example/schemas/plugin-manifest-v1.json",
    "type": "object",
    "required": ["name", "version", "kind", "principal", "public_key", "heartbeat_interval_seconds"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "version": {"type": "string", "minLength": 1, "maxLength": 32},
        "kind": {"enum": KINDS},
        "description": {"type": "string", "maxLength": 2000},
        "principal": {
            "type": "string",
            "pattern": r"^[-a-zA-Z0-9_]{1,100}$",
            "description": "The service principal (in its tenant) whose token the plugin authenticates with.",
        },
        "public_key": {"type": "string", "description": "Base64 of its 32-byte Ed25519 public key."},
        "provides": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "runners": {"type": "array", "maxItems": 50, "items": {"type": "string", "pattern": NAME}},
                "executors": {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1}},
                "actions": {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1}},
            },
        },
        "depends_on": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "pattern": NAME},
                    "version": {"type": "string", "description": "A PEP 440 range, e.g. >=1.0,<2"},
                },
            },
        },
        "compatible_contracts": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"runtime": {"type": "string", "description": "A PEP 440 range, e.g. >=1,<2"}},
        },
        "heartbeat_interval_seconds": {"type": "integer", "minimum": 1, "maximum": 3600},
        "health_url": {"type": "string", "pattern": "^https?://"},
        "control_url": {"type": "string", "pattern": "^https?://"},
        "supervision": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                key: {"type": "integer", "minimum": 1, "maximum": 86400} for key in TUNING_DEFAULTS
            },
        },
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)


def manifest_errors(manifest: Any) -> list[str]:
    """Every schema error, as `path: message` (empty when valid)."""
    return sorted(
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in _VALIDATOR.iter_errors(manifest)
    )


def manifest_validate(manifest: Any) -> dict[str, Any]:
    """The manifest, or PLUGIN_MANIFEST_INVALID naming the first error (schema, key, version ranges)."""
    errors = manifest_errors(manifest)
    if errors:
        raise ControlPlaneError("PLUGIN_MANIFEST_INVALID", errors[0])
    from controlplane.kernel.signatures import ed25519_public_key_normalise

    try:
        ed25519_public_key_normalise(manifest["public_key"])
        Version(manifest["version"])
        for dep in manifest.get("depends_on", []):
            SpecifierSet(dep.get("version", ""))
        SpecifierSet(manifest.get("compatible_contracts", {}).get("runtime", ""))
    except (ValueError, InvalidVersion, InvalidSpecifier) as exc:
        raise ControlPlaneError("PLUGIN_MANIFEST_INVALID", str(exc)) from exc
    if manifest["name"] in RESERVED:
        raise ControlPlaneError(
            "PLUGIN_MANIFEST_INVALID", f"name: {manifest['name']!r} is reserved (an API path)"
        )
    names = [d["name"] for d in manifest.get("depends_on", [])]
    if manifest["name"] in names:
        raise ControlPlaneError("PLUGIN_DEPENDENCY_CYCLE", f"{manifest['name']} depends on itself")
    return manifest


def tuning_of(manifest: Mapping[str, Any]) -> dict[str, int]:
    """The effective supervision parameters: defaults, then the manifest's own."""
    tuning = {**TUNING_DEFAULTS, **manifest.get("supervision", {})}
    tuning["dependency_break_seconds"] = int(settings.CONTROLPLANE_PLUGIN_DEPENDENCY_BREAK_SECONDS)
    return tuning


def incompatibility(manifest: Mapping[str, Any]) -> str:
    """Why the manifest is incompatible with this runtime's contract version ('' when it is compatible)."""
    spec = manifest.get("compatible_contracts", {}).get("runtime", "")
    try:
        if spec and Version(RUNTIME_CONTRACT_VERSION) not in SpecifierSet(spec):
            return f"runtime contract {spec} (this runtime is {RUNTIME_CONTRACT_VERSION})"
    except (InvalidSpecifier, InvalidVersion) as exc:
        return f"unreadable runtime range ({exc})"
    return ""


def dependency_problems(manifest: Mapping[str, Any], versions: Mapping[str, str]) -> list[str]:
    """Each dependency missing from `versions` ({name: version} in reach) or outside its range."""
    problems = []
    for dep in manifest.get("depends_on", []):
        present = versions.get(dep["name"])
        if present is None:
            problems.append(f"{dep['name']} is not registered")
            continue
        try:
            if Version(present) not in SpecifierSet(dep.get("version", "")):
                problems.append(f"{dep['name']} {present} is outside {dep['version']}")
        except (InvalidSpecifier, InvalidVersion) as exc:
            problems.append(f"{dep['name']}: unreadable version ({exc})")
    return problems


def find_cycle(graph: Mapping[str, list[str]], start: str | None = None) -> list[str]:
    """A dependency cycle of `graph` ({plugin: [dependencies]}) as a path [a, b, ..., a]; [] when none.
    The search begins at `start` (the plugin being registered), so the path names it first."""
    colour: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        colour[node] = 1
        path.append(node)
        for dep in graph.get(node, []):
            if colour.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in colour:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        colour[node] = 2
        return []

    for node in ([start] if start in graph else []) + sorted(graph):
        if node not in colour:
            found = visit(node)
            if found:
                return found
    return []


def topological_order(graph: Mapping[str, list[str]]) -> list[str]:
    """Every node, dependencies before dependents, ties by name (deterministic). Assumes no cycle."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        if node in seen:
            return
        seen.add(node)
        for dep in sorted(graph.get(node, [])):
            if dep in graph:
                visit(dep)
        order.append(node)

    for node in sorted(graph):
        visit(node)
    return order
