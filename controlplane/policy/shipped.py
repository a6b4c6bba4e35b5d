"""The two profiles the product ships (migration 0002 writes them as drafts; see docs/policy.md).

These contents are frozen: the migration and `profile_bootstrap` read them, and replay needs the same
bytes for the same (name, version). A change is a new version made with `profile_create` (or a new name
and migration), never an edit here.
"""

from __future__ import annotations

from typing import Any

STRICT = "control-plane-strict-v1"
DEV = "control-plane-dev-v1"

_PROD_TARGET = {"input": {"path": "target.environment", "equals": "prod"}}
_DANGER = {
    "id": "danger-actions",
    "description": "Actions named danger.* are never run by the control plane.",
    "when": {"action_prefix": "danger."},
    "reason": "POLICY_DENY_DANGEROUS_ACTION",
}

STRICT_CONTENT: dict[str, Any] = {
    "description": "Production: nothing above low runs without a person; agents need more people.",
    "tiers": {
        "low": {"mode": "autonomous"},
        "medium": {
            "mode": "assist",
            "quorum": 1,
            "approval_timeout_seconds": 3600,
            "escalation": [{"after_seconds": 900, "level": 1}, {"after_seconds": 1800, "level": 2}],
        },
        "high": {
            "mode": "assist",
            "quorum": 1,
            "approval_timeout_seconds": 1800,
            "escalation": [{"after_seconds": 600, "level": 1}, {"after_seconds": 1200, "level": 2}],
        },
        "critical": {
            "mode": "assist",
            "quorum": 2,
            "approval_timeout_seconds": 1800,
            "escalation": [{"after_seconds": 300, "level": 1}, {"after_seconds": 900, "level": 2}],
        },
    },
    "rules": [
        {
            "id": "prod-target",
            "description": "A step whose inputs name a production target is at least high.",
            "when": _PROD_TARGET,
            "raise_to": "high",
            "reason": "POLICY_TIER_RAISED_PROD_TARGET",
        },
        {
            "id": "prod-environment",
            "description": "In production, anything above low is handled as high.",
            "when": {"all": [{"environment": "prod"}, {"tier_at_least": "medium"}]},
            "raise_to": "high",
            "reason": "POLICY_TIER_RAISED_PROD_ENVIRONMENT",
        },
        {
            "id": "agent-medium",
            "description": "An agent asking for a medium step is handled as high.",
            "when": {"all": [{"principal_kind": "agent"}, {"tier_at_least": "medium"}]},
            "raise_to": "high",
            "reason": "POLICY_TIER_RAISED_AGENT_PRINCIPAL",
        },
        {
            "id": "agent-high",
            "description": "An agent asking for a high step needs two approvers (critical).",
            "when": {"all": [{"principal_kind": "agent"}, {"tier_at_least": "high"}]},
            "raise_to": "critical",
            "reason": "POLICY_TIER_RAISED_AGENT_PRINCIPAL",
        },
    ],
    "deny": [_DANGER],
}

DEV_CONTENT: dict[str, Any] = {
    "description": "Development: low and medium run alone; high and critical still need people.",
    "tiers": {
        "low": {"mode": "autonomous"},
        "medium": {"mode": "autonomous"},
        "high": {
            "mode": "assist",
            "quorum": 1,
            "approval_timeout_seconds": 86400,
            "escalation": [{"after_seconds": 3600, "level": 1}],
        },
        "critical": {
            "mode": "assist",
            "quorum": 2,
            "approval_timeout_seconds": 86400,
            "escalation": [{"after_seconds": 3600, "level": 1}],
        },
    },
    "rules": [
        {
            "id": "prod-target",
            "description": "Even from dev, a step that targets production is at least high.",
            "when": _PROD_TARGET,
            "raise_to": "high",
            "reason": "POLICY_TIER_RAISED_PROD_TARGET",
        },
    ],
    "deny": [_DANGER],
}

# name -> (environment, content); the default a fresh environment bootstraps with.
SHIPPED: dict[str, tuple[str, dict[str, Any]]] = {
    STRICT: ("prod", STRICT_CONTENT),
    DEV: ("dev", DEV_CONTENT),
}
DEFAULT_FOR_ENVIRONMENT = {"prod": STRICT, "dev": DEV}
