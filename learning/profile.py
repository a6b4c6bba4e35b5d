"""The learning profile: every threshold the loop uses, versioned, never in code paths.

A profile is content (JSON) with a name and version; its SHA-256 (RFC 8785) is recorded with every reward,
finding and calibration report computed under it, so an old reward keeps the version it was computed with.
A new version is a governed change (a `learning.update` proposal); the shipped version is below.
"""

from __future__ import annotations

from typing import Any

from controlplane.kernel.canonical import canonical_bytes

PROFILE_NAME = "learning-v1"

DEFAULT_PROFILE: dict[str, Any] = {
    "name": PROFILE_NAME,
    "reward_model": "reward-v1",
    # Outcome quality by result (0..1).
    "quality": {"completed": 1.0, "failed": 0.0, "cancelled": 0.2, "rolled_back": 0.1},
    # Provenance confidence factors (multiplied).
    "fidelity_factor": {"live": 1.0, "degraded": 0.5, "simulated": 0.2, "demo": 0.0},
    "incomplete_trace_factor": 0.5,
    "unconfirmed_factor": 0.5,
    # A review finding's soft penalty on the rewards of the outcomes it names, until it is decided.
    "review_penalty": 0.5,
    # Policy-changing updates take only outcomes of at least this fidelity (LEARNING_FIDELITY_GATE).
    "fidelity_gate": "live",
    # Anti-gaming (review): an approver deciding at least `min_decisions` requests, each within
    # `seconds` of its opening, approving all of them.
    "rubber_stamp": {"seconds": 10, "min_decisions": 10},
    # Anti-gaming (review): at least `count` low-tier successes of one agent within `window_seconds`.
    "success_burst": {"count": 20, "window_seconds": 300},
    # Anti-gaming (review): model-call tokens per execution above `factor` x the median of the action's peers.
    "token_inflation": {"factor": 3.0, "min_peers": 3},
    # Earned autonomy: the preconditions of a proposal (issue 15, §5).
    "autonomy": {
        "min_successes": 50,
        "window_days": 30,
        "stable_rate_min": 0.95,
        "tiers": ["low", "medium"],  # high and critical are never proposed, whatever this says
    },
    "calibration_bins": 10,
    "labels_required": {"execution": 1, "incident": 1},
}

# Tiers no profile can make autonomous: a test proves no path does.
NEVER_AUTONOMOUS = frozenset({"high", "critical"})

FIDELITY_ORDER = ("demo", "simulated", "degraded", "live")


def profile_hash(profile: dict[str, Any] | None = None) -> str:
    import hashlib

    return hashlib.sha256(canonical_bytes(profile or DEFAULT_PROFILE)).hexdigest()


def fidelity_at_least(fidelity: str, minimum: str) -> bool:
    return FIDELITY_ORDER.index(fidelity) >= FIDELITY_ORDER.index(minimum)


def lowest_fidelity(values: list[str]) -> str:
    known = [v for v in values if v in FIDELITY_ORDER] or ["live"]
    return min(known, key=FIDELITY_ORDER.index)
