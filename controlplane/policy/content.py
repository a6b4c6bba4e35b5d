"""The policy profile content format: its JSON Schema, the checks beyond it, and its hash.

Validation happens when a profile is saved, never when it is evaluated: whatever passes here evaluates
without error (unknown matcher keys, missing tiers and malformed rules are refused now). The checks, in
order, each refusing with POLICY_PROFILE_INVALID and the path at fault:

1. no floats anywhere (content is signed on the ledger; quorums and timeouts are integers)
2. the JSON Schema (shape, tiers, rules, the matcher language)
3. per tier: `quorum` and `approval_timeout_seconds` are required for `assist` and refused otherwise;
   the escalation ladder climbs strictly and ends before the timeout
4. the hard invariant: `high` and `critical` are never `autonomous`; an `assist` `critical` needs quorum >= 2
5. monotony: a higher tier is never less strict than a lower one (so raising a tier never loosens)
6. rule ids are unique; every reason is a code of the catalogue; matchers nest at most MAX_DEPTH deep

Pure: no database, no clock.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from controlplane.identity.models import PrincipalKind
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.reasons import CATALOGUE

TIERS = ("low", "medium", "high", "critical")
TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
MODES = ("autonomous", "assist", "blocked")
MODE_STRICTNESS = {"autonomous": 0, "assist": 1, "blocked": 2}
ENVIRONMENTS = ("dev", "stage", "prod")
NEVER_AUTONOMOUS = ("high", "critical")
CRITICAL_MIN_QUORUM = 2
MAX_DEPTH = 8

MATCHER_KEYS = (
    "all",
    "any",
    "not",
    "action",
    "action_prefix",
    "tier_at_least",
    "principal_kind",
    "environment",
    "tenant",
    "label",
    "input",
)
INPUT_OPERATORS = ("equals", "in", "exists", "at_least", "at_most")

_SCALAR = {"type": ["string", "integer", "boolean", "null"]}
_RULE_ID = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]{0,62}$"}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["tiers", "rules", "deny"],
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string", "maxLength": 2000},
        "tiers": {
            "type": "object",
            "required": list(TIERS),
            "additionalProperties": False,
            "properties": {tier: {"$ref": "#/$defs/tier"} for tier in TIERS},
        },
        "rules": {"type": "array", "maxItems": 200, "items": {"$ref": "#/$defs/raise_rule"}},
        "deny": {"type": "array", "maxItems": 200, "items": {"$ref": "#/$defs/deny_rule"}},
    },
    "$defs": {
        "tier": {
            "type": "object",
            "required": ["mode"],
            "additionalProperties": False,
            "properties": {
                "mode": {"enum": list(MODES)},
                "quorum": {"type": "integer", "minimum": 1, "maximum": 10},
                "approval_timeout_seconds": {"type": "integer", "minimum": 60, "maximum": 30 * 86400},
                "escalation": {
                    "type": "array",
                    "maxItems": 10,
                    "items": {
                        "type": "object",
                        "required": ["after_seconds", "level"],
                        "additionalProperties": False,
                        "properties": {
                            "after_seconds": {"type": "integer", "minimum": 1},
                            "level": {"type": "integer", "minimum": 1, "maximum": 10},
                        },
                    },
                },
            },
        },
        "raise_rule": {
            "type": "object",
            "required": ["id", "when", "raise_to", "reason"],
            "additionalProperties": False,
            "properties": {
                "id": _RULE_ID,
                "description": {"type": "string", "maxLength": 500},
                "when": {"$ref": "#/$defs/matcher"},
                "raise_to": {"enum": list(TIERS)},
                "reason": {"type": "string", "pattern": r"^POLICY_TIER_RAISED_[A-Z0-9_]+$"},
            },
        },
        "deny_rule": {
            "type": "object",
            "required": ["id", "when", "reason"],
            "additionalProperties": False,
            "properties": {
                "id": _RULE_ID,
                "description": {"type": "string", "maxLength": 500},
                "when": {"$ref": "#/$defs/matcher"},
                "reason": {"type": "string", "pattern": r"^POLICY_DENY_[A-Z0-9_]+$"},
            },
        },
        "matcher": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "propertyNames": {"enum": list(MATCHER_KEYS)},
            "properties": {
                "all": {"type": "array", "maxItems": 50, "items": {"$ref": "#/$defs/matcher"}},
                "any": {"type": "array", "maxItems": 50, "items": {"$ref": "#/$defs/matcher"}},
                "not": {"$ref": "#/$defs/matcher"},
                "action": {"type": "string", "minLength": 1},
                "action_prefix": {"type": "string", "minLength": 1},
                "tier_at_least": {"enum": list(TIERS)},
                "principal_kind": {"enum": list(PrincipalKind.values)},
                "environment": {"enum": list(ENVIRONMENTS)},
                "tenant": {"type": "string", "minLength": 1},
                "label": {
                    "type": "object",
                    "required": ["name", "equals"],
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string", "minLength": 1}, "equals": {"type": "string"}},
                },
                "input": {
                    "type": "object",
                    "required": ["path"],
                    "minProperties": 2,
                    "maxProperties": 2,
                    "additionalProperties": False,
                    "properties": {
                        "path": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"},
                        "equals": _SCALAR,
                        "in": {"type": "array", "minItems": 1, "maxItems": 100, "items": _SCALAR},
                        "exists": {"type": "boolean"},
                        "at_least": {"type": "integer"},
                        "at_most": {"type": "integer"},
                    },
                },
            },
        },
    },
}

_VALIDATOR = Draft202012Validator(SCHEMA)


def format_path(parts: list[Any] | tuple[Any, ...]) -> str:
    """`["rules", 0, "when", "all", 1]` -> `rules[0].when.all[1]`; the empty path is `$`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "$"


def _invalid(path: list[Any] | tuple[Any, ...], detail: str) -> ControlPlaneError:
    where = format_path(path)
    return ControlPlaneError("POLICY_PROFILE_INVALID", f"{where}: {detail}", extra={"path": where})


def _refuse_floats(value: Any, path: list[Any]) -> None:
    if isinstance(value, float):
        raise _invalid(path, "floats are not allowed (use integers)")
    if isinstance(value, dict):
        for key, child in value.items():
            _refuse_floats(child, [*path, key])
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _refuse_floats(child, [*path, index])


def _check_tier(tier: str, policy: dict[str, Any]) -> None:
    path = ["tiers", tier]
    if policy["mode"] == "assist":
        for key in ("quorum", "approval_timeout_seconds"):
            if key not in policy:
                raise _invalid([*path, key], "required when the mode is assist")
    else:
        for key in ("quorum", "approval_timeout_seconds", "escalation"):
            if key in policy:
                raise _invalid([*path, key], f"only an assist tier takes {key} (mode is {policy['mode']})")
    ladder = policy.get("escalation", [])
    for index, (before, after) in enumerate(itertools.pairwise(ladder), start=1):
        if after["after_seconds"] <= before["after_seconds"] or after["level"] <= before["level"]:
            raise _invalid(
                [*path, "escalation", index], "the ladder must climb: after_seconds and level rise"
            )
    if ladder and ladder[-1]["after_seconds"] >= policy["approval_timeout_seconds"]:
        raise _invalid(
            [*path, "escalation", len(ladder) - 1], "escalation must happen before approval_timeout_seconds"
        )


def _check_never_autonomous(tiers: dict[str, Any]) -> None:
    for tier in NEVER_AUTONOMOUS:
        if tiers[tier]["mode"] == "autonomous":
            raise _invalid(["tiers", tier, "mode"], f"{tier} steps are never autonomous")


def _check_critical_quorum(tiers: dict[str, Any]) -> None:
    critical = tiers["critical"]
    if critical["mode"] == "assist" and critical["quorum"] < CRITICAL_MIN_QUORUM:
        raise _invalid(
            ["tiers", "critical", "quorum"], f"critical steps need at least {CRITICAL_MIN_QUORUM} approvers"
        )


def _check_monotone(tiers: dict[str, Any]) -> None:
    for lower, higher in itertools.pairwise(TIERS):
        low, high = tiers[lower], tiers[higher]
        if MODE_STRICTNESS[high["mode"]] < MODE_STRICTNESS[low["mode"]]:
            raise _invalid(
                ["tiers", higher, "mode"],
                f"{higher} ({high['mode']}) is less strict than {lower} ({low['mode']})",
            )
        if low["mode"] == high["mode"] == "assist" and high["quorum"] < low["quorum"]:
            raise _invalid(["tiers", higher, "quorum"], f"{higher} needs at least the quorum of {lower}")


def _check_matcher_depth(matcher: dict[str, Any], path: list[Any], depth: int = 1) -> None:
    if depth > MAX_DEPTH:
        raise _invalid(path, f"matchers nest at most {MAX_DEPTH} deep")
    ((key, argument),) = matcher.items()
    if key in ("all", "any"):
        for index, child in enumerate(argument):
            _check_matcher_depth(child, [*path, key, index], depth + 1)
    elif key == "not":
        _check_matcher_depth(argument, [*path, key], depth + 1)


def _check_rules(content: dict[str, Any]) -> None:
    seen: set[str] = set()
    for section in ("rules", "deny"):
        for index, rule in enumerate(content[section]):
            path = [section, index]
            if rule["id"] in seen:
                raise _invalid([*path, "id"], f"duplicate rule id {rule['id']!r}")
            seen.add(rule["id"])
            if rule["reason"] not in CATALOGUE:
                raise _invalid([*path, "reason"], f"{rule['reason']} is not in the reason-code catalogue")
            _check_matcher_depth(rule["when"], [*path, "when"])


def profile_content_validate(content: Any) -> None:
    """Refuse content that is not a valid profile: ControlPlaneError(POLICY_PROFILE_INVALID, path=...)."""
    _refuse_floats(content, [])
    error = best_match(_VALIDATOR.iter_errors(content))
    if error is not None:
        raise _invalid(list(error.absolute_path), error.message)
    tiers = content["tiers"]
    _check_never_autonomous(tiers)
    for tier in TIERS:
        _check_tier(tier, tiers[tier])
    _check_critical_quorum(tiers)
    _check_monotone(tiers)
    _check_rules(content)


def content_hash(content: Any) -> str:
    """SHA-256 (hex) of the RFC 8785 canonical bytes of the content."""
    return hashlib.sha256(canonical_bytes(content)).hexdigest()
