"""Policy evaluation: a pure function of (step, context, profile content) -> PolicyDecision.

No database, no clock, no randomness: the same inputs give the same PolicyDecision, byte for byte, which is
what lets replay recompute a recorded verdict and compare hashes. The order, in the manner of OPA and
Cedar (an explicit trail of every rule considered; deny overrides):

1. no profile                -> deny, POLICY_MISSING (fail closed, in every environment)
2. base tier                 -> the step's own risk tier (an unknown tier: deny, POLICY_TIER_UNKNOWN)
3. raise rules               -> the effective tier is the highest `raise_to` of the matching rules, never
                                lower than the base tier. Matchers see the *base* tier, so the result does
                                not depend on the order of the rules. Each rule that raised contributes its
                                reason code.
4. deny rules                -> any match denies, whatever the tier says; each match contributes its code
5. the effective tier's mode -> autonomous: allow (POLICY_ALLOW_TIER_AUTONOMOUS)
                                assist: require_approval with the tier's quorum (POLICY_REQUIRES_APPROVAL)
                                blocked: deny (POLICY_DENY_RISK_TIER)
   When no rule matched at all, POLICY_NO_RULE_MATCHED comes before the mode's code: it is information,
   never a verdict of its own.
6. environment mode          -> only when both the context and the profile are `dev`, a deny is a warning:
                                `verdict` stays `deny`, `enforced` is false, POLICY_DEV_WARN_ONLY is added,
                                and `effective_verdict` is what the tier's mode allows without the deny
                                (assist: require_approval; autonomous, or blocked low/medium: allow).
                                A high or critical step is never let through without approval: a blocked
                                high/critical tier stays an enforced deny even in dev.

`effective_verdict` is what the runtime acts on; `quorum`, `approval_timeout_seconds` and `escalation`
describe it (zero and empty unless it is `require_approval`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controlplane.kernel.canonical import canonical_bytes
from controlplane.policy.content import (
    NEVER_AUTONOMOUS,
    TIER_RANK,
    TIERS,
    content_hash,
    profile_content_validate,
)

ALLOW = "allow"
REQUIRE_APPROVAL = "require_approval"
DENY = "deny"

_MODE_VERDICT = {
    "autonomous": (ALLOW, "POLICY_ALLOW_TIER_AUTONOMOUS"),
    "assist": (REQUIRE_APPROVAL, "POLICY_REQUIRES_APPROVAL"),
    "blocked": (DENY, "POLICY_DENY_RISK_TIER"),
}


@dataclass(frozen=True)
class StepFacts:
    """What is known about the step being decided: its action, the action's base tier, its inputs."""

    action: str
    tier: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    action_version: str = ""


@dataclass(frozen=True)
class Context:
    """Who asks and where: the environment the control plane runs in, the principal, free-form labels."""

    environment: str
    principal_kind: str = ""
    principal: str = ""
    tenant: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Escalation:
    after_seconds: int
    level: int


@dataclass(frozen=True)
class TierPolicy:
    mode: str
    quorum: int = 0
    approval_timeout_seconds: int = 0
    escalation: tuple[Escalation, ...] = ()


@dataclass(frozen=True)
class Rule:
    """A raise rule (`raise_to` set) or a deny rule (`raise_to` None)."""

    id: str
    when: Mapping[str, Any]
    reason: str
    raise_to: str | None = None


@dataclass(frozen=True)
class ProfileRef:
    name: str
    version: int
    environment: str
    content_hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "environment": self.environment,
            "content_hash": self.content_hash,
        }


@dataclass(frozen=True)
class ProfileContent:
    """Validated, parsed profile content. Build it with `from_content` (which validates), never directly."""

    ref: ProfileRef
    tiers: Mapping[str, TierPolicy]
    rules: tuple[Rule, ...]
    deny: tuple[Rule, ...]

    @classmethod
    def from_content(
        cls, content: Mapping[str, Any], *, name: str, version: int, environment: str
    ) -> ProfileContent:
        """Validate the content (POLICY_PROFILE_INVALID on failure) and parse it for evaluation."""
        profile_content_validate(content)
        tiers = {
            tier: TierPolicy(
                mode=spec["mode"],
                quorum=spec.get("quorum", 0),
                approval_timeout_seconds=spec.get("approval_timeout_seconds", 0),
                escalation=tuple(
                    Escalation(e["after_seconds"], e["level"]) for e in spec.get("escalation", [])
                ),
            )
            for tier, spec in content["tiers"].items()
        }
        return cls(
            ref=ProfileRef(name, version, environment, content_hash(content)),
            tiers=tiers,
            rules=tuple(Rule(r["id"], r["when"], r["reason"], r["raise_to"]) for r in content["rules"]),
            deny=tuple(Rule(r["id"], r["when"], r["reason"]) for r in content["deny"]),
        )


@dataclass(frozen=True)
class TrailEntry:
    """One line of the explanation: which rule (or tier, or environment) was considered, and what it did."""

    rule: str
    kind: str  # profile | raise | deny | tier | environment
    matched: bool
    effect: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "kind": self.kind, "matched": self.matched, "effect": self.effect}


@dataclass(frozen=True)
class PolicyDecision:
    """A policy verdict with everything that produced it. JSON-serialisable with no floats (see as_dict)."""

    verdict: str
    enforced: bool
    effective_verdict: str
    base_tier: str
    tier: str
    reason_codes: tuple[str, ...]
    trail: tuple[TrailEntry, ...]
    profile: ProfileRef | None
    quorum: int = 0
    approval_timeout_seconds: int = 0
    escalation: tuple[Escalation, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "enforced": self.enforced,
            "effective_verdict": self.effective_verdict,
            "base_tier": self.base_tier,
            "tier": self.tier,
            "quorum": self.quorum,
            "approval_timeout_seconds": self.approval_timeout_seconds,
            "escalation": [{"after_seconds": e.after_seconds, "level": e.level} for e in self.escalation],
            "reason_codes": list(self.reason_codes),
            "trail": [entry.as_dict() for entry in self.trail],
            "profile": self.profile.as_dict() if self.profile else None,
        }

    @property
    def decision_hash(self) -> str:
        """SHA-256 (hex) of the canonical (RFC 8785) bytes of `as_dict()`; replay compares these."""
        return hashlib.sha256(canonical_bytes(self.as_dict())).hexdigest()


# --- the matcher language ---------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equality without Python's coercions: `1 != True`, `1 != 1.0`, `"1" != 1`."""
    return type(a) is type(b) and a == b


_MISSING = object()


def _input_value(inputs: Mapping[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _input_matches(inputs: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    value = _input_value(inputs, spec["path"])
    if "exists" in spec:
        return (value is not _MISSING) == spec["exists"]
    if value is _MISSING:
        return False
    if "equals" in spec:
        return _same(value, spec["equals"])
    if "in" in spec:
        return any(_same(value, candidate) for candidate in spec["in"])
    if type(value) is not int:
        return False
    if "at_least" in spec:
        return value >= spec["at_least"]
    return value <= spec["at_most"]


def matches(matcher: Mapping[str, Any], step: StepFacts, context: Context) -> bool:
    """Whether a (validated) matcher holds for the step and context. Total over validated content."""
    ((key, argument),) = matcher.items()
    match key:
        case "all":
            return all(matches(m, step, context) for m in argument)
        case "any":
            return any(matches(m, step, context) for m in argument)
        case "not":
            return not matches(argument, step, context)
        case "action":
            return step.action == argument
        case "action_prefix":
            return step.action.startswith(argument)
        case "tier_at_least":
            return TIER_RANK[step.tier] >= TIER_RANK[argument]
        case "principal_kind":
            return context.principal_kind == argument
        case "environment":
            return context.environment == argument
        case "tenant":
            return context.tenant == argument
        case "label":
            return _same(context.labels.get(argument["name"]), argument["equals"])
        case "input":
            return _input_matches(step.inputs, argument)
    raise ValueError(f"unknown matcher {key!r}: build profiles with ProfileContent.from_content")


# --- evaluation -------------------------------------------------------------------------------------


def _dedupe(codes: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(codes))


def _missing(step: StepFacts, code: str, entry: TrailEntry, profile: ProfileRef | None) -> PolicyDecision:
    return PolicyDecision(
        verdict=DENY,
        enforced=True,
        effective_verdict=DENY,
        base_tier=step.tier,
        tier=step.tier,
        reason_codes=(code,),
        trail=(entry,),
        profile=profile,
    )


def _dev_fallback(tier: str, policy: TierPolicy) -> str | None:
    """What a not-enforced deny becomes in dev; None when it must stay enforced (high/critical blocked)."""
    if policy.mode == "assist":
        return REQUIRE_APPROVAL
    if policy.mode == "autonomous" or tier not in NEVER_AUTONOMOUS:
        return ALLOW
    return None


def evaluate(*, step: StepFacts, context: Context, profile: ProfileContent | None) -> PolicyDecision:
    """Decide one step under one profile. Pure: see the module docstring for the order."""
    if profile is None:
        return _missing(step, "POLICY_MISSING", TrailEntry("profile", "profile", False, DENY), None)
    if step.tier not in TIER_RANK:
        entry = TrailEntry("base_tier", "tier", False, DENY)
        return _missing(step, "POLICY_TIER_UNKNOWN", entry, profile.ref)

    codes: list[str] = []
    trail: list[TrailEntry] = []
    any_matched = False

    tier = step.tier
    for rule in profile.rules:
        matched = matches(rule.when, step, context)
        raises = matched and TIER_RANK[rule.raise_to] > TIER_RANK[step.tier]
        any_matched = any_matched or matched
        if raises:
            codes.append(rule.reason)
            tier = max(tier, rule.raise_to, key=TIER_RANK.__getitem__)
        effect = f"raise_to:{rule.raise_to}" if raises else ("no_change" if matched else "none")
        trail.append(TrailEntry(rule.id, "raise", matched, effect))

    denied = False
    for rule in profile.deny:
        matched = matches(rule.when, step, context)
        any_matched = any_matched or matched
        denied = denied or matched
        if matched:
            codes.append(rule.reason)
        trail.append(TrailEntry(rule.id, "deny", matched, DENY if matched else "none"))

    policy = profile.tiers[tier]
    if denied:
        verdict = DENY
    else:
        verdict, code = _MODE_VERDICT[policy.mode]
        if not any_matched:
            codes.append("POLICY_NO_RULE_MATCHED")
        codes.append(code)
        trail.append(TrailEntry(f"tiers.{tier}", "tier", True, policy.mode))

    enforced, effective = True, verdict
    if verdict == DENY and context.environment == "dev" and profile.ref.environment == "dev":
        fallback = _dev_fallback(tier, policy)
        if denied:
            trail.append(TrailEntry(f"tiers.{tier}", "tier", True, policy.mode))
        if fallback is None:
            trail.append(TrailEntry("environment.dev", "environment", True, "enforced"))
        else:
            enforced, effective = False, fallback
            codes.append("POLICY_DEV_WARN_ONLY")
            if fallback == REQUIRE_APPROVAL:
                codes.append("POLICY_REQUIRES_APPROVAL")
            trail.append(TrailEntry("environment.dev", "environment", True, "warn_only"))

    approval = effective == REQUIRE_APPROVAL
    return PolicyDecision(
        verdict=verdict,
        enforced=enforced,
        effective_verdict=effective,
        base_tier=step.tier,
        tier=tier,
        reason_codes=_dedupe(codes),
        trail=tuple(trail),
        profile=profile.ref,
        quorum=policy.quorum if approval else 0,
        approval_timeout_seconds=policy.approval_timeout_seconds if approval else 0,
        escalation=policy.escalation if approval else (),
    )


__all__ = [
    "ALLOW",
    "DENY",
    "REQUIRE_APPROVAL",
    "TIERS",
    "Context",
    "PolicyDecision",
    "ProfileContent",
    "ProfileRef",
    "StepFacts",
    "evaluate",
    "matches",
]
