"""The built-in `core` skill: the built-in actions, as a skill-manifest/v1 document.

The core skill is *trusted as built-in*, not signed: it ships inside the code, so the code's own
provenance is its trust root. Verification of the core skill checks that the installed manifest is exactly
this one (its SHA-256 over canonical JSON is pinned by construction) and that it is compatible with the
runtime's contract version; the built-in publisher `controlplane` has no keys and signs nothing else.
"""

from __future__ import annotations

CORE_SKILL = {
    "schema": "skill-manifest/v1",
    "name": "core",
    "version": "1.0.0",
    "publisher": "controlplane",
    "description": "The built-in actions of the control plane.",
    "requires": {"runtime": ">=1.0,<2.0"},
    "issued_at": "2026-01-01T00:00:00Z",
    "actions": [
        {
            "name": "noop.echo",
            "version": "1.0.0",
            "description": "Returns its input unchanged. For tests, demos and dry runs.",
            "risk_tier": "low",
            "executor": "noop.echo",
            "input_schema": {
                "type": "object",
                "properties": {"message": {"type": "string", "maxLength": 10000}},
                "additionalProperties": True,
            },
            "output_schema": {"type": "object"},
            "capabilities": [],
            "side_effects": ["none"],
            "blast_radius": {"max_targets": 0},
            "compensating_action": {"action": "noop.echo", "input_mapping": {"message": "/message"}},
        },
        {
            "name": "http.webhook",
            "version": "1.0.0",
            "description": "POSTs the step to a registered runner, signed (HMAC-SHA256 with a timestamp), "
            "and records the runner's reply as the outcome.",
            "risk_tier": "medium",
            "executor": "http.webhook",
            "input_schema": {
                "type": "object",
                "required": ["runner", "operation"],
                "properties": {
                    "runner": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
                    "operation": {"type": "string", "minLength": 1, "maxLength": 200},
                    "payload": {"type": "object"},
                    "target": {
                        "type": "object",
                        "properties": {"environment": {"enum": ["dev", "stage", "prod"]}},
                    },
                },
                "additionalProperties": False,
            },
            "output_schema": {"type": "object"},
            "capabilities": [],
            "side_effects": ["network", "external_write"],
            "blast_radius": {"target_input": "target", "max_targets": 1},
        },
    ],
}


def executor_name(action: dict) -> str:
    """The registered executor an action runs on (a manifest names it, or gives {kind, name, plugin})."""
    executor = action["executor"]
    return executor["name"] if isinstance(executor, dict) else executor
