"""The approvals app's contracts: deciding a step waiting for people, and the events of a request."""

from __future__ import annotations

from typing import Any

from controlplane.kernel.contracts import (
    COMMAND,
    COUNT,
    HEX64,
    PRINCIPAL_REF,
    TEXT,
    Contract,
    event_contract,
    obj,
    schema,
)
from controlplane.policy.contracts import TIER

OWNER = "approvals"
COVERS = ("controlplane.approval.request.",)

APPROVAL_BASE = {
    "request": HEX64,
    "subject_kind": TEXT,
    "subject_id": TEXT,
    "content_hash": HEX64,
}

_COMMANDS = [
    Contract(
        "execution.approve",
        COMMAND,
        OWNER,
        "Approve a step waiting for people: a human holding approvals.decide, not the requester, naming "
        "the content hash they reviewed, with a reason. At quorum the request is approved, consumed once and "
        "the step is dispatched.",
        schema(
            obj(
                {
                    "request": HEX64,
                    "decision": {"const": "approve"},
                    "reason": TEXT,
                    "content_hash": HEX64,
                }
            )
        ),
        api=("POST /api/v1/approvals/{id}/decide/", "POST /api/v1/approvals/bulk-decide/"),
        service="approvals.services.approval_decide",
        cli=("manage.py approvals approve ID --content-hash H --reason R (token: CONTROLPLANE_TOKEN)",),
        capability="approvals.decide",
    ),
    Contract(
        "execution.reject",
        COMMAND,
        OWNER,
        "Reject a step waiting for people (same rules as execution.approve): the step is blocked with "
        "APPROVAL_REJECTED and the execution fails, cancelling its other steps.",
        schema(
            obj(
                {
                    "request": HEX64,
                    "decision": {"const": "reject"},
                    "reason": TEXT,
                    "content_hash": HEX64,
                }
            )
        ),
        api=("POST /api/v1/approvals/{id}/decide/", "POST /api/v1/approvals/bulk-decide/"),
        service="approvals.services.approval_decide",
        cli=("manage.py approvals reject ID --content-hash H --reason R (token: CONTROLPLANE_TOKEN)",),
        capability="approvals.decide",
    ),
]

_APPROVAL_SERVICES = "approvals.services"
_APPROVAL_EVENTS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "opened",
        "People must consent to exactly this content (hash); `reason_codes` are the policy's.",
        {"quorum": {"type": "integer", "minimum": 1}, "risk_tier": TIER, "requested_by": PRINCIPAL_REF},
        "approval_request_open",
    ),
    (
        "decided",
        "One person's decision, with their reason.",
        {"decision": {"enum": ["approve", "reject"]}, "approver": PRINCIPAL_REF, "reason": TEXT},
        "approval_decide",
    ),
    ("approved", "The quorum was reached.", {"approvals": COUNT, "quorum": COUNT}, "approval_decide"),
    ("rejected", "Someone rejected it.", {"approvals": COUNT, "quorum": COUNT}, "approval_decide"),
    ("consumed", "The granted approval was used, once.", {}, "approval_consume"),
    ("cancelled", "Withdrawn (e.g. its execution ended).", {"reason": {"type": "string"}}, "approval_cancel"),
    ("expired", "No decision in time: fails closed (APPROVAL_EXPIRED).", {}, "approvals_sweep"),
    ("escalated", "The escalation ladder reached `level`.", {"level": COUNT}, "approvals_sweep"),
]
CONTRACTS = [
    *_COMMANDS,
    *(
        event_contract(
            f"approval.request.{verb}",
            OWNER,
            f"{description} Subject `approval/<id>`.",
            obj({**APPROVAL_BASE, **fields}),
            f"{_APPROVAL_SERVICES}.{service}",
        )
        for verb, description, fields, service in _APPROVAL_EVENTS
    ),
]
