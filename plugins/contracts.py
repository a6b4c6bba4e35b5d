"""The plugins app's contracts: register, heartbeat, review and release, and the events of plugins."""

from __future__ import annotations

from controlplane.kernel.contracts import (
    CODES,
    COMMAND,
    COUNT,
    DATE_TIME,
    HEX64,
    QUERY,
    TEXT,
    Contract,
    event_contract,
    obj,
    schema,
)

OWNER = "plugins"
COVERS = ("controlplane.plugin.",)

NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}
STATE = {"enum": ["unknown", "healthy", "degraded", "crashed", "blocked", "quarantined"]}
SEVERITY = {"type": "string", "enum": ["", "low", "medium", "high", "critical"]}
MAYBE_TIME = {"type": ["string", "null"]}
EVIDENCE = {
    "type": "object",
    "description": "What the supervisor decided on (plugins.supervisor.Evidence.as_data).",
    "required": ["state", "since", "interval", "tuning", "last_heartbeat_at", "restarts", "violations"],
}
DECISION = {"type": "object", "required": ["state", "code", "detail", "severity", "restart"]}

CONTRACTS = [
    Contract(
        "plugin.register",
        COMMAND,
        OWNER,
        "Register (or re-register) a plugin manifest in the caller's tenant, or shared with the platform "
        "grant. Refusals: PLUGIN_MANIFEST_INVALID, PLUGIN_DEPENDENCY_CYCLE, PLUGIN_EXISTS.",
        schema(obj({"manifest": {"type": "object"}}, {"shared": {"type": "boolean"}})),
        api=("POST /api/v1/plugins/",),
        service="plugins.services.plugin_register",
        cli=("manage.py plugins register FILE",),
        capability="plugins.manage",
    ),
    Contract(
        "plugin.heartbeat",
        COMMAND,
        OWNER,
        "A plugin's signed heartbeat (Standard Webhooks v1a with its own key), evidence only. Refusals: "
        "SIGNATURE_MISSING, STALE_TIMESTAMP, PLUGIN_KEY_UNKNOWN, PLUGIN_SIGNATURE_INVALID, "
        "PLUGIN_SEQUENCE_STALE (violations, counted), PLUGIN_HEARTBEAT_INVALID, PLUGIN_PRINCIPAL_MISMATCH.",
        schema(
            obj(
                {"instance": TEXT, "sequence": {"type": "integer", "minimum": 1}},
                {
                    "version": {"type": "string"},
                    "checks": {
                        "type": "object",
                        "additionalProperties": {"enum": ["ok", "degraded", "failing"]},
                    },
                    "restart_count": COUNT,
                    "backoff": {"type": "object"},
                },
            )
        ),
        api=("POST /api/v1/plugins/{name}/heartbeats/",),
        service="plugins.services.heartbeat_ingest",
        capability="plugins.heartbeat",
    ),
    Contract(
        "plugin.quarantine",
        COMMAND,
        OWNER,
        "A person quarantines a plugin, with a reason (PLUGIN_QUARANTINED_BY_REVIEW).",
        schema(obj({"reason": TEXT})),
        api=("POST /api/v1/plugins/{name}/quarantine/",),
        service="plugins.services.plugin_quarantine",
        cli=("manage.py plugins quarantine NAME --reason R",),
        capability="plugins.manage",
    ),
    Contract(
        "plugin.review.decide",
        COMMAND,
        OWNER,
        "Quarantine the plugin behind a review item, or dismiss it, with a reason (one, or in bulk).",
        schema(obj({"decision": {"enum": ["quarantine", "dismiss"]}, "reason": TEXT})),
        api=("POST /api/v1/plugins/reviews/{id}/decide/", "POST /api/v1/plugins/reviews/bulk-decide/"),
        service="plugins.services.review_decide",
        cli=("manage.py plugins dismiss ITEM --reason R",),
        capability="plugins.review",
    ),
    Contract(
        "plugin.release",
        COMMAND,
        OWNER,
        "Ask for a quarantined plugin's release: an approval of subject plugins.release bound to the "
        "quarantine's evidence, its quorum from the policy profile by severity; approved, it is unknown "
        "again.",
        schema(obj({"reason": TEXT})),
        api=("POST /api/v1/plugins/{name}/release/",),
        service="plugins.services.plugin_release_request",
        cli=("manage.py plugins release NAME --reason R",),
        capability="plugins.manage",
    ),
    Contract(
        "plugin.list",
        QUERY,
        OWNER,
        "Plugins in reach with state, reason codes, last evidence, restarts and back-off.",
        schema(obj({})),
        api=("GET /api/v1/plugins/", "GET /api/v1/plugins/{name}/", "GET /api/v1/plugins/health/"),
        service="plugins.selectors.plugins_visible",
        cli=("manage.py plugins list", "manage.py plugins show NAME"),
        capability="plugins.read",
    ),
    event_contract(
        "plugin.registered",
        OWNER,
        "A plugin manifest was registered. Subject `plugin/<name>`.",
        obj(
            {
                "plugin": NAME,
                "version": TEXT,
                "kind": TEXT,
                "manifest_sha256": HEX64,
                "provides": {"type": "array", "items": TEXT},
                "depends_on": {"type": "array", "items": {"type": "object"}},
                "principal": TEXT,
                "public_key": TEXT,
                "shared": {"type": "boolean"},
                "state": STATE,
            }
        ),
        "plugins.services.plugin_register",
    ),
    event_contract(
        "plugin.transitioned",
        OWNER,
        "The supervisor moved a plugin, with the evidence and tick it decided on (replay re-derives it).",
        obj(
            {
                "plugin": NAME,
                "from": STATE,
                "to": STATE,
                "detail": {"type": "string"},
                "severity": SEVERITY,
                "tick": DATE_TIME,
                "evidence": EVIDENCE,
                "decision": DECISION,
            }
        ),
        "plugins.services.plugins_supervise",
    ),
    event_contract(
        "plugin.quarantined",
        OWNER,
        "A person quarantined a plugin (directly or from a review item), with a reason.",
        obj(
            {"plugin": NAME, "from": STATE, "detail": TEXT, "severity": SEVERITY, "reason": TEXT},
            {"item": COUNT, "evidence_sha256": HEX64},
        ),
        "plugins.services.plugin_quarantine",
    ),
    event_contract(
        "plugin.released",
        OWNER,
        "An approval released a quarantined plugin; it is unknown until fresh evidence.",
        obj(
            {
                "plugin": NAME,
                "approval": HEX64,
                "content_sha256": HEX64,
                "quarantine_codes": CODES,
                "reason": TEXT,
            }
        ),
        "plugins.services.plugin_release_resolve",
    ),
    event_contract(
        "plugin.review.opened",
        OWNER,
        "A low-severity degradation opened a review item.",
        obj({"plugin": NAME, "item": COUNT, "detail": TEXT, "severity": SEVERITY, "evidence_sha256": HEX64}),
        "plugins.services.plugins_supervise",
    ),
    event_contract(
        "plugin.review.decided",
        OWNER,
        "A person decided a review item: quarantine or dismiss, with a reason.",
        obj(
            {
                "plugin": NAME,
                "item": COUNT,
                "decision": {"enum": ["quarantine", "dismiss"]},
                "reason": TEXT,
                "evidence_sha256": HEX64,
            }
        ),
        "plugins.services.review_decide",
    ),
    event_contract(
        "plugin.restart.requested",
        OWNER,
        "The supervisor asked a crashed plugin's control URL to restart it (Kubernetes-style back-off).",
        obj(
            {
                "plugin": NAME,
                "attempt": COUNT,
                "requested_at": DATE_TIME,
                "next_restart_at": MAYBE_TIME,
                "backoff_seconds": COUNT,
            }
        ),
        "plugins.services.plugins_supervise",
    ),
    event_contract(
        "plugin.heartbeats.digested",
        OWNER,
        "A digest of the heartbeats a plugin sent since the last one (heartbeats are not ledgered singly).",
        obj(
            {
                "plugin": NAME,
                "count": COUNT,
                "first_at": DATE_TIME,
                "last_at": MAYBE_TIME,
                "instance": {"type": "string"},
                "last_sequence": COUNT,
                "bodies_sha256": HEX64,
            }
        ),
        "plugins.services.plugins_supervise",
    ),
]
