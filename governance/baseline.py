"""Event types written today without a contract: the baseline of `governance validate`'s contract check.

Taken when the check was introduced, as a linter's baseline is: these are not reported, every other
uncontracted `controlplane.*` type on the chain is (GOVERNANCE_CONTRACT_MISSING), and an entry that has
gained a contract must leave the list (reported as GOVERNANCE_DOCS_STALE), so the baseline only shrinks.
Each owner removes its lines when it adds the contracts.
"""

from __future__ import annotations

WITHOUT_CONTRACT = frozenset(
    {
        "controlplane.channels.notification.updated",
        "controlplane.confidence.assessed",
        "controlplane.detection.rule.versioned",
        "controlplane.evidence.assembled",
        "controlplane.identity.grant.added",
        "controlplane.identity.grant.revoked",
        "controlplane.identity.principal.activated",
        "controlplane.identity.principal.created",
        "controlplane.identity.principal.deactivated",
        "controlplane.identity.signin.failed",
        "controlplane.identity.signin.succeeded",
        "controlplane.identity.signout.completed",
        "controlplane.identity.tenant.changed",
        "controlplane.identity.tenant.created",
        "controlplane.identity.token.issued",
        "controlplane.identity.token.revoked",
        "controlplane.identity.user.changed",
        "controlplane.incident.evidence.attached",
        "controlplane.incident.opened",
        "controlplane.incident.severity.raised",
        "controlplane.ledger.checkpoint.created",
        "controlplane.ledger.key.activated",
        "controlplane.ledger.key.generated",
        "controlplane.ledger.key.revoked",
        "controlplane.ledger.key.rotated",
        "controlplane.promotion.decided",
        "controlplane.signal.received",
        "controlplane.silence.created",
        "controlplane.silence.expired",
    }
)
