"""The trusted core skill: the built-in actions, as data (installed by migration 0002)."""

from __future__ import annotations

CORE_SKILL = {
    "name": "core",
    "version": "1.0.0",
    "publisher": "controlplane",
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
        },
    ],
}
