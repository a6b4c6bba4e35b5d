"""The learning loop's events: labels, agents' claims, anti-gaming findings and their decisions, reports,
proposals. (`manage.py contracts docs` writes them into docs/contracts.md.)"""

from __future__ import annotations

from controlplane.kernel.contracts import HEX64, PRINCIPAL_REF, TEXT, event_contract, obj

OWNER = "learning"
COVERS = ("controlplane.learning.",)
_SERVICES = "learning.services"
_RESULT = {"enum": ["success", "partial", "failure", "true_incident", "false_positive"]}
_SEVERITY = {"enum": ["block", "review"]}

CONTRACTS = [
    event_contract(
        "learning.label.recorded",
        OWNER,
        "A person labelled an outcome, with a reason (never an outcome of their own action). Subject "
        "`learning-outcome/<id>`.",
        obj({"outcome": HEX64, "reviewer": PRINCIPAL_REF, "label": _RESULT, "reason": TEXT}),
        f"{_SERVICES}.label_record",
    ),
    event_contract(
        "learning.claim.recorded",
        OWNER,
        "An agent reported how one of its executions went; checked at once by the anti-gaming checks.",
        obj({"outcome": HEX64, "execution": {"type": "string", "maxLength": 64}, "result": _RESULT}),
        f"{_SERVICES}.claim_record",
    ),
    event_contract(
        "learning.finding.recorded",
        OWNER,
        "An anti-gaming finding with its evidence: `block` keeps the outcomes out of rewards at once, "
        "`review` applies a soft penalty until a person decides. `reason_codes` holds its code.",
        obj(
            {
                "fingerprint": HEX64,
                "code": {"type": "string", "pattern": "^LEARNING_[A-Z_]+$"},
                "severity": _SEVERITY,
                "principal": {"type": "string"},
                "outcome": {"type": "string"},
                "evidence": {"type": "object"},
            }
        ),
        f"{_SERVICES}.learning_sync",
    ),
    event_contract(
        "learning.finding.decided",
        OWNER,
        "A person confirmed (the outcomes leave the rewards) or dismissed (the penalty lifts) a finding.",
        obj({"fingerprint": HEX64, "status": {"enum": ["confirmed", "dismissed"]}, "reason": TEXT}),
        f"{_SERVICES}.finding_decide",
    ),
    event_contract(
        "learning.report.recorded",
        OWNER,
        "A calibration report, a pure function of the tenant's chain up to `until_seq` (replay recomputes "
        "it and compares `content_hash`).",
        obj(
            {
                "tenant": {"type": "string", "minLength": 1},
                "content_hash": HEX64,
                "until_seq": {"type": "integer", "minimum": 0},
                "profile_hash": HEX64,
            }
        ),
        f"{_SERVICES}.learning_calibrate",
    ),
    event_contract(
        "learning.proposal.created",
        OWNER,
        "The loop proposes earned autonomy for an (agent, action) pair whose every precondition held in "
        "the report; nothing changes until approved. High and critical tiers are never proposed.",
        obj(
            {
                "proposal": {"type": "integer", "minimum": 1},
                "kind": {"const": "autonomy"},
                "key": {"type": "string", "minLength": 1},
                "report": HEX64,
                "tier": {"enum": ["low", "medium"]},
            }
        ),
        f"{_SERVICES}.learning_calibrate",
    ),
]
