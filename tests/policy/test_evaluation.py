"""The pure evaluation: every path of the order and every reason code it can produce (no database)."""

from __future__ import annotations

import hashlib

import pytest

from controlplane.kernel.canonical import canonical_bytes
from controlplane.policy.evaluation import Context, StepFacts, evaluate, matches
from controlplane.policy.shipped import DEV, DEV_CONTENT, STRICT, STRICT_CONTENT
from tests.policy.factories import content, parsed

PROD = Context(environment="prod", principal_kind="human", principal="acme/alice", tenant="acme")
DEV_CONTEXT = Context(environment="dev", principal_kind="human", principal="acme/alice", tenant="acme")
PROD_TARGET = {"input": {"path": "target.environment", "equals": "prod"}}


def step(tier: str = "low", action: str = "noop.echo", **inputs) -> StepFacts:
    return StepFacts(action=action, tier=tier, inputs=inputs, action_version="1")


def raise_rule(rule_id: str, when: dict, to: str, reason: str = "POLICY_TIER_RAISED_PROD_TARGET") -> dict:
    return {"id": rule_id, "when": when, "raise_to": to, "reason": reason}


def deny_rule(rule_id: str, when: dict, reason: str = "POLICY_DENY_DANGEROUS_ACTION") -> dict:
    return {"id": rule_id, "when": when, "reason": reason}


def trail(decision) -> list[tuple[str, str, bool, str]]:
    return [(e.kind, e.rule, e.matched, e.effect) for e in decision.trail]


# --- the order --------------------------------------------------------------------------------------


@pytest.mark.parametrize("context", [PROD, DEV_CONTEXT])
def test_no_profile_fails_closed_everywhere(context):
    decision = evaluate(step=step("low"), context=context, profile=None)
    assert decision.as_dict() == {
        "verdict": "deny",
        "enforced": True,
        "effective_verdict": "deny",
        "base_tier": "low",
        "tier": "low",
        "quorum": 0,
        "approval_timeout_seconds": 0,
        "escalation": [],
        "reason_codes": ["POLICY_MISSING"],
        "trail": [{"rule": "profile", "kind": "profile", "matched": False, "effect": "deny"}],
        "profile": None,
    }


def test_unknown_base_tier_is_denied():
    decision = evaluate(step=step("extreme"), context=PROD, profile=parsed())
    assert (decision.verdict, decision.enforced, decision.reason_codes) == (
        "deny",
        True,
        ("POLICY_TIER_UNKNOWN",),
    )


def test_autonomous_tier_with_no_rule_matched_is_an_allow_not_a_deny():
    decision = evaluate(step=step("low"), context=PROD, profile=parsed())
    assert (decision.verdict, decision.effective_verdict, decision.enforced) == ("allow", "allow", True)
    assert decision.reason_codes == ("POLICY_NO_RULE_MATCHED", "POLICY_ALLOW_TIER_AUTONOMOUS")
    assert trail(decision) == [("tier", "tiers.low", True, "autonomous")]
    assert (decision.quorum, decision.approval_timeout_seconds, decision.escalation) == (0, 0, ())


def test_assist_tier_requires_approval_with_its_quorum_timeout_and_ladder():
    decision = evaluate(step=step("medium"), context=PROD, profile=parsed())
    assert decision.as_dict() | {"profile": None} == {
        "verdict": "require_approval",
        "enforced": True,
        "effective_verdict": "require_approval",
        "base_tier": "medium",
        "tier": "medium",
        "quorum": 1,
        "approval_timeout_seconds": 3600,
        "escalation": [{"after_seconds": 900, "level": 1}],
        "reason_codes": ["POLICY_NO_RULE_MATCHED", "POLICY_REQUIRES_APPROVAL"],
        "trail": [{"rule": "tiers.medium", "kind": "tier", "matched": True, "effect": "assist"}],
        "profile": None,
    }


def test_blocked_tier_is_denied_with_the_risk_tier_code():
    profile = parsed(content(tiers={"critical": {"mode": "blocked"}}))
    decision = evaluate(step=step("critical"), context=PROD, profile=profile)
    assert (decision.verdict, decision.effective_verdict) == ("deny", "deny")
    assert decision.reason_codes == ("POLICY_NO_RULE_MATCHED", "POLICY_DENY_RISK_TIER")
    assert decision.quorum == 0


def test_a_raise_rule_lifts_the_tier_and_contributes_its_code():
    profile = parsed(content(rules=[raise_rule("prod-target", PROD_TARGET, "high")]))
    decision = evaluate(step=step("low", target={"environment": "prod"}), context=PROD, profile=profile)
    assert (decision.base_tier, decision.tier, decision.verdict, decision.quorum) == (
        "low",
        "high",
        "require_approval",
        1,
    )
    assert decision.reason_codes == ("POLICY_TIER_RAISED_PROD_TARGET", "POLICY_REQUIRES_APPROVAL")
    assert trail(decision) == [
        ("raise", "prod-target", True, "raise_to:high"),
        ("tier", "tiers.high", True, "assist"),
    ]


def test_a_rule_that_does_not_match_leaves_the_tier_and_says_so():
    profile = parsed(content(rules=[raise_rule("prod-target", PROD_TARGET, "high")]))
    decision = evaluate(step=step("low", target={"environment": "stage"}), context=PROD, profile=profile)
    assert decision.tier == "low"
    assert decision.reason_codes == ("POLICY_NO_RULE_MATCHED", "POLICY_ALLOW_TIER_AUTONOMOUS")
    assert trail(decision)[0] == ("raise", "prod-target", False, "none")


def test_tiers_only_go_up_a_lower_raise_to_changes_nothing_and_contributes_no_code():
    profile = parsed(content(rules=[raise_rule("to-medium", {"action": "noop.echo"}, "medium")]))
    decision = evaluate(step=step("high"), context=PROD, profile=profile)
    assert decision.tier == "high"
    # The rule matched (so no POLICY_NO_RULE_MATCHED), but it raised nothing.
    assert decision.reason_codes == ("POLICY_REQUIRES_APPROVAL",)
    assert trail(decision)[0] == ("raise", "to-medium", True, "no_change")


def test_the_highest_matching_raise_wins_and_every_raising_rule_contributes_once():
    rules = [
        raise_rule("agent", {"principal_kind": "agent"}, "medium", "POLICY_TIER_RAISED_AGENT_PRINCIPAL"),
        raise_rule("prod", PROD_TARGET, "critical"),
        raise_rule("agent-again", {"principal_kind": "agent"}, "high", "POLICY_TIER_RAISED_AGENT_PRINCIPAL"),
    ]
    agent = Context(environment="prod", principal_kind="agent")
    decision = evaluate(
        step=step("low", target={"environment": "prod"}), context=agent, profile=parsed(content(rules=rules))
    )
    assert (decision.tier, decision.quorum) == ("critical", 2)
    assert decision.reason_codes == (
        "POLICY_TIER_RAISED_AGENT_PRINCIPAL",
        "POLICY_TIER_RAISED_PROD_TARGET",
        "POLICY_REQUIRES_APPROVAL",
    )
    assert [e.effect for e in decision.trail] == [
        "raise_to:medium",
        "raise_to:critical",
        "raise_to:high",
        "assist",
    ]


def test_deny_overrides_an_autonomous_tier():
    profile = parsed(content(deny=[deny_rule("danger", {"action_prefix": "danger."})]))
    decision = evaluate(step=step("low", action="danger.drop"), context=PROD, profile=profile)
    assert (decision.verdict, decision.effective_verdict, decision.enforced) == ("deny", "deny", True)
    assert decision.reason_codes == ("POLICY_DENY_DANGEROUS_ACTION",)
    assert trail(decision) == [("deny", "danger", True, "deny")]
    assert (decision.quorum, decision.approval_timeout_seconds) == (0, 0)


def test_raise_and_deny_codes_come_in_order_and_every_deny_is_listed():
    profile = parsed(
        content(
            rules=[raise_rule("prod", PROD_TARGET, "high")],
            deny=[
                deny_rule("danger", {"action_prefix": "danger."}),
                deny_rule("not-matching", {"tenant": "other"}),
                deny_rule("danger-too", {"action": "danger.drop"}, "POLICY_DENY_RISK_TIER"),
            ],
        )
    )
    decision = evaluate(
        step=step("low", action="danger.drop", target={"environment": "prod"}), context=PROD, profile=profile
    )
    assert decision.reason_codes == (
        "POLICY_TIER_RAISED_PROD_TARGET",
        "POLICY_DENY_DANGEROUS_ACTION",
        "POLICY_DENY_RISK_TIER",
    )
    assert [(e.rule, e.matched) for e in decision.trail] == [
        ("prod", True),
        ("danger", True),
        ("not-matching", False),
        ("danger-too", True),
    ]


# --- environment modes -------------------------------------------------------------------------------


def test_dev_turns_a_deny_of_an_autonomous_tier_into_an_allow_with_a_warning():
    profile = parsed(content(deny=[deny_rule("danger", {"action_prefix": "danger."})]), environment="dev")
    decision = evaluate(step=step("low", action="danger.drop"), context=DEV_CONTEXT, profile=profile)
    assert (decision.verdict, decision.enforced, decision.effective_verdict) == ("deny", False, "allow")
    assert decision.reason_codes == ("POLICY_DENY_DANGEROUS_ACTION", "POLICY_DEV_WARN_ONLY")
    assert trail(decision) == [
        ("deny", "danger", True, "deny"),
        ("tier", "tiers.low", True, "autonomous"),
        ("environment", "environment.dev", True, "warn_only"),
    ]


def test_dev_never_lets_a_high_step_through_without_approval():
    profile = parsed(content(deny=[deny_rule("danger", {"action_prefix": "danger."})]), environment="dev")
    decision = evaluate(step=step("high", action="danger.drop"), context=DEV_CONTEXT, profile=profile)
    assert (decision.verdict, decision.enforced, decision.effective_verdict) == (
        "deny",
        False,
        "require_approval",
    )
    assert (decision.quorum, decision.approval_timeout_seconds) == (1, 1800)
    assert decision.reason_codes == (
        "POLICY_DENY_DANGEROUS_ACTION",
        "POLICY_DEV_WARN_ONLY",
        "POLICY_REQUIRES_APPROVAL",
    )


def test_dev_keeps_a_blocked_critical_tier_enforced():
    profile = parsed(content(tiers={"critical": {"mode": "blocked"}}), environment="dev")
    decision = evaluate(step=step("critical"), context=DEV_CONTEXT, profile=profile)
    assert (decision.verdict, decision.enforced, decision.effective_verdict) == ("deny", True, "deny")
    assert decision.reason_codes == ("POLICY_NO_RULE_MATCHED", "POLICY_DENY_RISK_TIER")
    assert trail(decision)[-1] == ("environment", "environment.dev", True, "enforced")


def test_dev_turns_a_blocked_low_tier_into_an_allow_with_a_warning():
    blocked_low = {"mode": "blocked"}
    profile = parsed(
        content(
            tiers={"low": blocked_low, "medium": blocked_low, "high": blocked_low, "critical": blocked_low}
        ),
        environment="dev",
    )
    decision = evaluate(step=step("low"), context=DEV_CONTEXT, profile=profile)
    assert (decision.verdict, decision.enforced, decision.effective_verdict) == ("deny", False, "allow")
    assert decision.reason_codes == (
        "POLICY_NO_RULE_MATCHED",
        "POLICY_DENY_RISK_TIER",
        "POLICY_DEV_WARN_ONLY",
    )


@pytest.mark.parametrize(
    ("context_environment", "profile_environment"), [("prod", "dev"), ("dev", "prod"), ("stage", "stage")]
)
def test_a_deny_is_enforced_unless_both_context_and_profile_are_dev(context_environment, profile_environment):
    profile = parsed(
        content(deny=[deny_rule("danger", {"action_prefix": "danger."})]), environment=profile_environment
    )
    decision = evaluate(
        step=step("low", action="danger.drop"),
        context=Context(environment=context_environment),
        profile=profile,
    )
    assert (decision.verdict, decision.enforced, decision.effective_verdict) == ("deny", True, "deny")
    assert "POLICY_DEV_WARN_ONLY" not in decision.reason_codes


# --- the matcher language ----------------------------------------------------------------------------

FACTS = StepFacts(
    action="db.migrate",
    tier="medium",
    inputs={"target": {"environment": "prod", "replicas": 12, "dry_run": True, "id": 1}, "note": "x"},
)
WHO = Context(
    environment="stage", principal_kind="agent", principal="acme/bot", tenant="acme", labels={"team": "db"}
)


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        ({"action": "db.migrate"}, True),
        ({"action": "db"}, False),
        ({"action_prefix": "db."}, True),
        ({"action_prefix": "http."}, False),
        ({"tier_at_least": "medium"}, True),
        ({"tier_at_least": "low"}, True),
        ({"tier_at_least": "high"}, False),
        ({"principal_kind": "agent"}, True),
        ({"principal_kind": "human"}, False),
        ({"environment": "stage"}, True),
        ({"environment": "prod"}, False),
        ({"tenant": "acme"}, True),
        ({"tenant": "other"}, False),
        ({"label": {"name": "team", "equals": "db"}}, True),
        ({"label": {"name": "team", "equals": "web"}}, False),
        ({"label": {"name": "absent", "equals": ""}}, False),
        ({"input": {"path": "target.environment", "equals": "prod"}}, True),
        ({"input": {"path": "target.environment", "equals": "stage"}}, False),
        ({"input": {"path": "target.environment", "in": ["stage", "prod"]}}, True),
        ({"input": {"path": "target.environment", "in": ["dev"]}}, False),
        ({"input": {"path": "target.replicas", "at_least": 10}}, True),
        ({"input": {"path": "target.replicas", "at_least": 13}}, False),
        ({"input": {"path": "target.replicas", "at_most": 12}}, True),
        ({"input": {"path": "target.replicas", "at_most": 11}}, False),
        ({"input": {"path": "target.dry_run", "at_least": 0}}, False),  # a boolean is not a number
        ({"input": {"path": "note", "at_least": 0}}, False),
        ({"input": {"path": "target.dry_run", "equals": True}}, True),
        ({"input": {"path": "target.id", "equals": True}}, False),  # 1 is not True
        ({"input": {"path": "target.id", "equals": "1"}}, False),  # 1 is not "1"
        ({"input": {"path": "target.id", "in": [True, "1"]}}, False),
        ({"input": {"path": "target.id", "exists": True}}, True),
        ({"input": {"path": "target.missing", "exists": True}}, False),
        ({"input": {"path": "target.missing", "exists": False}}, True),
        ({"input": {"path": "target.missing", "equals": None}}, False),  # missing is not null
        ({"input": {"path": "note.deeper", "exists": True}}, False),  # through a string
        ({"all": [{"action_prefix": "db."}, {"tenant": "acme"}]}, True),
        ({"all": [{"action_prefix": "db."}, {"tenant": "other"}]}, False),
        ({"all": []}, True),
        ({"any": [{"tenant": "other"}, {"principal_kind": "agent"}]}, True),
        ({"any": [{"tenant": "other"}]}, False),
        ({"any": []}, False),
        ({"not": {"tenant": "other"}}, True),
        ({"not": {"not": {"tenant": "other"}}}, False),
    ],
)
def test_matchers(matcher, expected):
    assert matches(matcher, FACTS, WHO) is expected


def test_an_unknown_matcher_never_reaches_evaluation_through_validated_content():
    with pytest.raises(ValueError, match="unknown matcher"):
        matches({"bogus": 1}, FACTS, WHO)


# --- the decision as data ----------------------------------------------------------------------------


def test_the_decision_is_canonical_json_and_its_hash_is_the_hash_of_those_bytes():
    decision = evaluate(step=step("medium"), context=PROD, profile=parsed())
    body = decision.as_dict()
    assert decision.decision_hash == hashlib.sha256(canonical_bytes(body)).hexdigest()
    assert decision.profile.as_dict() == {
        "name": "test-profile",
        "version": 1,
        "environment": "prod",
        "content_hash": hashlib.sha256(canonical_bytes(content())).hexdigest(),
    }


def test_the_same_inputs_give_the_same_decision_hash():
    first = evaluate(step=step("low", target={"environment": "prod"}), context=PROD, profile=parsed())
    second = evaluate(step=step("low", target={"environment": "prod"}), context=PROD, profile=parsed())
    assert first == second and first.decision_hash == second.decision_hash


# --- the shipped profiles ----------------------------------------------------------------------------

STRICT_PROFILE = parsed(STRICT_CONTENT, environment="prod")
DEV_PROFILE = parsed(DEV_CONTENT, environment="dev")


def test_shipped_contents_are_frozen():
    # Replay recomputes recorded decisions against (name, version): these bytes must never change.
    assert (
        STRICT_PROFILE.ref.content_hash == "00aa3f58ff03ef1d9ed19b3b59f05d6ca98cb7a3174ebf6001443c86a4b1d29f"
    )
    assert DEV_PROFILE.ref.content_hash == "5572855cbd42a2ab8e3cfae0123ccabafde3b13e2e2c9a8a1f6a47e228573bb7"
    assert (STRICT, DEV) == ("control-plane-strict-v1", "control-plane-dev-v1")


@pytest.mark.parametrize(
    ("facts", "context", "verdict", "tier", "quorum", "codes"),
    [
        (step("low"), PROD, "allow", "low", 0, ["POLICY_NO_RULE_MATCHED", "POLICY_ALLOW_TIER_AUTONOMOUS"]),
        (
            step("low", target={"environment": "prod"}),
            PROD,
            "require_approval",
            "high",
            1,
            ["POLICY_TIER_RAISED_PROD_TARGET", "POLICY_REQUIRES_APPROVAL"],
        ),
        (
            step("medium"),
            PROD,
            "require_approval",
            "high",
            1,
            ["POLICY_TIER_RAISED_PROD_ENVIRONMENT", "POLICY_REQUIRES_APPROVAL"],
        ),
        (
            step("medium"),
            Context(environment="stage", principal_kind="agent"),
            "require_approval",
            "high",
            1,
            ["POLICY_TIER_RAISED_AGENT_PRINCIPAL", "POLICY_REQUIRES_APPROVAL"],
        ),
        (
            step("high"),
            Context(environment="prod", principal_kind="agent"),
            "require_approval",
            "critical",
            2,
            ["POLICY_TIER_RAISED_AGENT_PRINCIPAL", "POLICY_REQUIRES_APPROVAL"],
        ),
        (step("low", action="danger.wipe"), PROD, "deny", "low", 0, ["POLICY_DENY_DANGEROUS_ACTION"]),
    ],
)
def test_strict_profile(facts, context, verdict, tier, quorum, codes):
    decision = evaluate(step=facts, context=context, profile=STRICT_PROFILE)
    assert (decision.effective_verdict, decision.tier, decision.quorum, list(decision.reason_codes)) == (
        verdict,
        tier,
        quorum,
        codes,
    )
    assert decision.enforced is True


def test_dev_profile_runs_medium_alone_warns_on_danger_and_still_asks_for_high():
    medium = evaluate(step=step("medium"), context=DEV_CONTEXT, profile=DEV_PROFILE)
    assert (medium.effective_verdict, medium.reason_codes) == (
        "allow",
        ("POLICY_NO_RULE_MATCHED", "POLICY_ALLOW_TIER_AUTONOMOUS"),
    )
    danger = evaluate(step=step("low", action="danger.wipe"), context=DEV_CONTEXT, profile=DEV_PROFILE)
    assert (danger.verdict, danger.enforced, danger.effective_verdict) == ("deny", False, "allow")
    high = evaluate(step=step("high"), context=DEV_CONTEXT, profile=DEV_PROFILE)
    assert (high.effective_verdict, high.quorum, high.approval_timeout_seconds) == (
        "require_approval",
        1,
        86400,
    )
    critical = evaluate(step=step("critical"), context=DEV_CONTEXT, profile=DEV_PROFILE)
    assert (critical.effective_verdict, critical.quorum) == ("require_approval", 2)
