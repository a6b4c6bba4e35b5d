"""The policy app's contracts: its query (explain) and the events of profile versions."""

from __future__ import annotations

from controlplane.kernel.contracts import (
    HEX64,
    PRINCIPAL_REF,
    QUERY,
    TEXT,
    Contract,
    event_contract,
    obj,
    schema,
)

OWNER = "controlplane.policy"
COVERS = ("controlplane.policy.profile.",)

TIER = {"enum": ["low", "medium", "high", "critical"]}
VERDICT = {"enum": ["allow", "require_approval", "deny"]}
ENVIRONMENT = {"enum": ["dev", "stage", "prod"]}
PROFILE_REF = obj(
    {
        "name": {"type": "string"},
        "version": {"type": ["integer", "null"]},
        "content_hash": {"type": "string", "pattern": "^([0-9a-f]{64})?$"},
    },
    description="The profile the verdicts were given under (empty name, null version: none was active).",
)
POLICY_CONTEXT = obj(
    {
        "environment": ENVIRONMENT,
        "principal_kind": {"enum": ["human", "service", "agent", "tool"]},
        "principal": PRINCIPAL_REF,
        "tenant": TEXT,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    }
)
NAME_VERSION = obj({"name": TEXT, "version": {"type": "integer", "minimum": 1}})
PROFILE_BASE = {"name": TEXT, "version": {"type": "integer", "minimum": 1}, "environment": ENVIRONMENT}

CONTRACTS = [
    Contract(
        "policy.explain",
        QUERY,
        OWNER,
        "The verdict a real or hypothetical step would get, with the rule trail that produced it, under the "
        "active profile or a given one. Records nothing.",
        schema(
            obj(
                {"action": TEXT, "tier": TIER},
                {
                    "action_version": {"type": "string"},
                    "inputs": {"type": "object"},
                    "principal_kind": {"enum": ["human", "service", "agent", "tool"]},
                    "environment": ENVIRONMENT,
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "profile": {"type": "integer", "description": "A profile id (e.g. a draft)."},
                },
            )
        ),
        api=("POST /api/v1/policy/explain/",),
        service="controlplane.policy.selectors.explain",
        cli=("manage.py policy explain",),
        capability="policy.read",
    ),
    event_contract(
        "policy.profile.created",
        OWNER,
        "A new, immutable profile version (a draft). Subject `policy-profile/<name>`.",
        obj(
            {**PROFILE_BASE, "content_hash": HEX64, "content": {"type": "object"}},
            {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
        ),
        "controlplane.policy.services.profile_create",
    ),
    event_contract(
        "policy.profile.activated",
        OWNER,
        "The profile version now decides for its environment.",
        obj(
            {
                **PROFILE_BASE,
                "content_hash": HEX64,
                "previous": {"oneOf": [{"type": "null"}, NAME_VERSION]},
                "reason": TEXT,
            }
        ),
        "controlplane.policy.services.profile_activate",
    ),
    event_contract(
        "policy.profile.retired",
        OWNER,
        "The version stopped deciding, replaced by another (it may be activated again).",
        obj({**PROFILE_BASE, "content_hash": HEX64, "replaced_by": NAME_VERSION, "reason": TEXT}),
        "controlplane.policy.services.profile_activate",
    ),
]
