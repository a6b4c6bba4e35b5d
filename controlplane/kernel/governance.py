"""Governance, model-free: the validation check registry, the mode matrix, and the enforcement reader.

- **Checks.** `manage.py governance validate` runs every check registered here (`register_check`, from an
  app's `ready()`: the governance app registers the schema, fallback, mode and contract checks, skills its
  re-verification, a plugin registry its manifests). A check yields `Finding`s, each with a reason code
  and the object and JSON pointer at fault.
- **The mode matrix.** Per environment (`dev`, `stage`, `prod`): event signing mode, trace required on
  intents, the minimum fidelity of data a policy-changing learning update may rest on, envelope
  enforcement, plugin supervision enforcement. From `settings.CONTROLPLANE_GOVERNANCE_MODES` (defaults
  below), validated against `MATRIX_SCHEMA`; the running environment's signing mode is the one
  `CONTROLPLANE_EVENT_SIGNING_MODE` sets.
- **Enforcement.** A check that can refuse asks `gate(dimension, code, ...)`: in `enforce` it refuses
  (ControlPlaneError) and counts the refusal; in `warn` it counts a "would have refused" with the same code
  and tenant and lets the request through (Kubernetes admission's `warn`/`enforce`). The one rollback
  toggle, `CONTROLPLANE_ENFORCEMENT=warn`, turns every enforce into warn: read at each check through the
  registered override source (the governance app's ledgered runtime setting, which wins over the
  environment variable) and cached for at most `ENFORCEMENT_CACHE_SECONDS`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator

from controlplane.kernel.errors import ControlPlaneError

# --- findings and the check registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing `governance validate` found wrong: a reason code, the object, the JSON pointer in it."""

    code: str
    object: str
    pointer: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """A named validation: `run()` yields findings; `codes` are the reason codes it may report. An
    `offline` check reads only code and settings (no database): `governance validate --offline` runs only
    those (as `make test` does, before any database is migrated)."""

    name: str
    description: str
    codes: tuple[str, ...]
    run: Callable[[], Iterable[Finding]]
    offline: bool = False


CHECKS: dict[str, Check] = {}


def register_check(check: Check) -> None:
    """Register a validation check (from an app's `ready()`); a name registered twice differently fails."""
    existing = CHECKS.get(check.name)
    if existing is not None and existing != check:
        raise ValueError(f"governance check {check.name!r} is already registered")
    CHECKS[check.name] = check


@dataclass
class ValidationResult:
    """Every check run, and every finding, in check order."""

    checks: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def by_code(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.code] = counts.get(finding.code, 0) + 1
        return dict(sorted(counts.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": list(self.checks),
            "findings": [finding.as_dict() for finding in self.findings],
            "by_code": self.by_code(),
        }


def validate(*, only: Iterable[str] | None = None, offline: bool = False) -> ValidationResult:
    """Run the registered checks (all, the ones named, or the offline ones); a check that crashes is itself
    a finding (GOVERNANCE_CHECK_FAILED)."""
    names = list(only) if only is not None else sorted(CHECKS)
    if offline:
        names = [name for name in names if name in CHECKS and CHECKS[name].offline]
    result = ValidationResult()
    for name in names:
        check = CHECKS.get(name)
        if check is None:
            raise ValueError(f"no governance check named {name!r}")
        result.checks.append(name)
        try:
            result.findings += list(check.run())
        except Exception as exc:  # a broken check must fail validation, not hide it
            result.findings.append(
                Finding("GOVERNANCE_CHECK_FAILED", f"check/{name}", "", f"{type(exc).__name__}: {exc}")
            )
    return result


def schema_findings(
    *, code: str, object: str, instance: Any, schema: Mapping[str, Any], prefix: str = ""
) -> list[Finding]:
    """Every JSON Schema error of `instance` as a finding naming `object` and the JSON pointer at fault."""
    validator = Draft202012Validator(dict(schema))
    return [
        Finding(code, object, prefix + "".join(f"/{part}" for part in error.absolute_path), error.message)
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- the mode matrix ---------------------------------------------------------------------------------------

ENVIRONMENTS = ("dev", "stage", "prod")  # from the least production-like to the most
WARN, ENFORCE = "warn", "enforce"
ENFORCEMENT_MODES = (WARN, ENFORCE)

# Each dimension's values, weakest first: an environment may not be weaker than a less production-like one.
STRICTNESS: dict[str, tuple[Any, ...]] = {
    "signing": ("off", "allow-unsigned", "require-signed", "require-valid-signature"),
    "trace_required": (False, True),
    "learning_min_fidelity": ("demo", "simulated", "degraded", "live"),
    "envelope": ENFORCEMENT_MODES,
    "plugin_supervision": ENFORCEMENT_MODES,
}
DIMENSIONS = tuple(STRICTNESS)
ENFORCED_DIMENSIONS = ("envelope", "plugin_supervision")  # the ones `gate` reads

DEFAULT_MATRIX: dict[str, dict[str, Any]] = {
    "dev": {
        "signing": "allow-unsigned",
        "trace_required": False,
        "learning_min_fidelity": "simulated",
        "envelope": WARN,
        "plugin_supervision": WARN,
    },
    "stage": {
        "signing": "require-signed",
        "trace_required": True,
        "learning_min_fidelity": "degraded",
        "envelope": ENFORCE,
        "plugin_supervision": ENFORCE,
    },
    "prod": {
        "signing": "require-valid-signature",
        "trace_required": True,
        "learning_min_fidelity": "live",
        "envelope": ENFORCE,
        "plugin_supervision": ENFORCE,
    },
}

_ROW_SCHEMA = {
    "type": "object",
    "required": list(DIMENSIONS),
    "additionalProperties": False,
    "properties": {name: {"enum": list(values)} for name, values in STRICTNESS.items()},
}
MATRIX_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": list(ENVIRONMENTS),
    "additionalProperties": False,
    "properties": {environment: _ROW_SCHEMA for environment in ENVIRONMENTS},
}


def mode_matrix() -> dict[str, dict[str, Any]]:
    """The configured matrix (settings, over the defaults), the running environment's signing mode being
    the one the ingest path applies."""
    configured = getattr(settings, "CONTROLPLANE_GOVERNANCE_MODES", None) or {}
    matrix = {env: {**DEFAULT_MATRIX[env], **dict(configured.get(env, {}))} for env in ENVIRONMENTS}
    for env, row in configured.items():
        if env not in matrix:
            matrix[env] = dict(row)  # kept so validation names it
    current = settings.CONTROLPLANE_ENV
    if current in matrix:
        matrix[current]["signing"] = settings.CONTROLPLANE_EVENT_SIGNING_MODE
    return matrix


def mode_regressions(matrix: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """GOVERNANCE_MODE_REGRESSION: a dimension where `prod` is weaker than `stage`, or `stage` than `dev`."""
    findings = []
    for weaker_env, stronger_env in itertools.pairwise(ENVIRONMENTS):
        for dimension, order in STRICTNESS.items():
            low, high = matrix.get(weaker_env, {}).get(dimension), matrix.get(stronger_env, {}).get(dimension)
            if low not in order or high not in order:
                continue  # the schema check reports unknown values
            if order.index(high) < order.index(low):
                findings.append(
                    Finding(
                        "GOVERNANCE_MODE_REGRESSION",
                        f"mode-matrix/{stronger_env}",
                        f"/{stronger_env}/{dimension}",
                        f"{stronger_env} {dimension}={high!r} is weaker than {weaker_env}'s {low!r}",
                    )
                )
    return findings


# --- enforcement: the rollback toggle, read at each check ---------------------------------------------------

ENFORCEMENT_CACHE_SECONDS = 1.0

_override_source: list[Callable[[], str | None]] = []
_counter_sinks: list[Callable[[str, str, str, str], None]] = []
_cache_lock = threading.Lock()
_cache: dict[str, Any] = {"at": float("-inf"), "value": None}


def register_enforcement_source(source: Callable[[], str | None]) -> None:
    """The function that reads the runtime toggle (`warn`, `enforce` or None when unset) without a
    redeploy; registered once, by the governance app."""
    if source not in _override_source:
        _override_source[:] = [source]


def register_counter_sink(sink: Callable[[str, str, str, str], None]) -> None:
    """Where refusals and would-have-refused are counted: `sink(outcome, dimension, code, tenant)`."""
    if sink not in _counter_sinks:
        _counter_sinks.append(sink)


def enforcement_forget() -> None:
    """Drop the cached toggle (the service that changes it calls this in its own process)."""
    with _cache_lock:
        _cache["at"] = float("-inf")


def enforcement_toggle() -> tuple[str, str]:
    """The rollback toggle's value (`warn` | `enforce`) and where it came from (`runtime` | `env` |
    `default`), cached for at most ENFORCEMENT_CACHE_SECONDS."""
    now = time.monotonic()
    with _cache_lock:
        if now - _cache["at"] <= ENFORCEMENT_CACHE_SECONDS and _cache["value"] is not None:
            return _cache["value"]
    value: tuple[str, str] | None = None
    for source in _override_source:
        try:
            runtime = source()
        except Exception:  # the toggle cannot be read: keep the configured value, never fail a request on it
            runtime = None
        if runtime in ENFORCEMENT_MODES:
            value = (runtime, "runtime")
    if value is None:
        configured = (getattr(settings, "CONTROLPLANE_ENFORCEMENT", "") or "").strip().lower()
        value = (configured, "env") if configured in ENFORCEMENT_MODES else (ENFORCE, "default")
    with _cache_lock:
        _cache.update(at=now, value=value)
    return value


def effective_mode(dimension: str, *, environment: str | None = None) -> str:
    """`warn` or `enforce` for an enforced dimension in an environment (default: this one): the matrix's
    mode, turned to warn while the rollback toggle says warn."""
    if dimension not in ENFORCED_DIMENSIONS:
        raise ValueError(f"{dimension!r} is not an enforced dimension")
    configured = mode_matrix().get(environment or settings.CONTROLPLANE_ENV, {}).get(dimension, ENFORCE)
    if configured == ENFORCE and enforcement_toggle()[0] == WARN:
        return WARN
    return WARN if configured == WARN else ENFORCE


def gate(dimension: str, code: str, *, tenant: str, detail: str | None = None) -> str:
    """A check that would refuse with `code`: refuse in enforce mode (counted as `refused`), count a
    `would_refuse` in warn mode and return `warn` so the caller goes on, with a warning it reports."""
    mode = effective_mode(dimension)
    outcome = "refused" if mode == ENFORCE else "would_refuse"
    for sink in _counter_sinks:
        sink(outcome, dimension, code, tenant)
    if mode == ENFORCE:
        raise ControlPlaneError(code, detail)
    return WARN
