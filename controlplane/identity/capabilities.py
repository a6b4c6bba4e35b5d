"""The capability catalogue. A grant names one of these; a view declares which one it needs.

Deny by default: a view that declares nothing is refused to everyone.
"""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "console.view": "Sign in to the operator console and see its pages.",
    "ledger.read": "Read ledger events, checkpoints and verification results.",
    "ledger.verify": "Run verification of the chain.",
    "ledger.manage": "Make checkpoints, export bundles, manage ledger signing keys.",
    "events.ingest": "Submit CloudEvents through POST /api/v1/events/.",
    "identity.manage": "Create principals, grant and revoke capabilities, issue tokens.",
    "producers.manage": "Register event producers and their signing keys.",
    "approvals.read": "See approval requests and their decisions.",
    "approvals.decide": "Approve or reject approval requests.",
    "intents.submit": "Submit plan drafts (intents) through POST /api/v1/intents/.",
    "executions.read": "See executions, their steps, verdicts, outcomes and traces.",
    "executions.cancel": "Cancel running executions.",
    "killswitch.manage": "Engage and release the kill switch.",
    "policy.read": "Read policy profiles and explain verdicts.",
    "policy.manage": "Edit and activate policy profiles.",
    "system.read": "See readiness details (/readyz) and runtime settings.",
    "signals.ingest": "Send alert signals (generic JSON, Alertmanager, Grafana, signal CloudEvents).",
    "incidents.read": "See signals, detection rules, evidence, incidents, silences and timelines.",
    "incidents.manage": "Acknowledge, mitigate, resolve, close and reopen incidents; raise their severity.",
    "detection.manage": "Create new versions of detection rules.",
    "silences.manage": "Create and expire silences (high and critical ones need approval).",
}


def is_known(capability: str) -> bool:
    return capability in CAPABILITIES
