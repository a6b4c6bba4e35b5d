"""Property tests over generated valid profiles, steps and contexts (hypothesis).

- evaluation is deterministic (same inputs, same decision and hash) and its output is canonical JSON
- tiers only go up
- high and critical steps are never allowed without approval, in any valid profile, in any environment
- deny overrides: a matching deny rule always yields a deny verdict
- the order of the raise rules does not change the outcome
- no content that makes high or critical autonomous passes validation
"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy.content import (
    ENVIRONMENTS,
    MODE_STRICTNESS,
    MODES,
    TIER_RANK,
    TIERS,
    profile_content_validate,
)
from controlplane.policy.evaluation import Context, ProfileContent, StepFacts, evaluate, matches

ACTIONS = ["noop.echo", "http.webhook", "danger.drop", "db.migrate"]
KINDS = ["human", "service", "agent", "tool"]
RAISE_REASONS = [
    "POLICY_TIER_RAISED_PROD_TARGET",
    "POLICY_TIER_RAISED_PROD_ENVIRONMENT",
    "POLICY_TIER_RAISED_AGENT_PRINCIPAL",
]
DENY_REASONS = ["POLICY_DENY_DANGEROUS_ACTION", "POLICY_DENY_RISK_TIER"]
SCALARS = st.one_of(
    st.sampled_from(["prod", "stage", "dev", "x"]), st.integers(-3, 20), st.booleans(), st.none()
)

leaf_matchers = st.one_of(
    st.builds(lambda a: {"action": a}, st.sampled_from(ACTIONS)),
    st.builds(lambda a: {"action_prefix": a}, st.sampled_from(["db.", "danger.", "http", "noop.echo"])),
    st.builds(lambda t: {"tier_at_least": t}, st.sampled_from(TIERS)),
    st.builds(lambda k: {"principal_kind": k}, st.sampled_from(KINDS)),
    st.builds(lambda e: {"environment": e}, st.sampled_from(ENVIRONMENTS)),
    st.builds(lambda t: {"tenant": t}, st.sampled_from(["acme", "other"])),
    st.builds(lambda v: {"label": {"name": "team", "equals": v}}, st.sampled_from(["db", "web"])),
    st.builds(lambda v: {"input": {"path": "target.environment", "equals": v}}, SCALARS),
    st.builds(lambda v: {"input": {"path": "target.replicas", "at_least": v}}, st.integers(-3, 20)),
    st.builds(lambda v: {"input": {"path": "target.replicas", "at_most": v}}, st.integers(-3, 20)),
    st.builds(lambda v: {"input": {"path": "target", "exists": v}}, st.booleans()),
    st.builds(lambda v: {"input": {"path": "note", "in": v}}, st.lists(SCALARS, min_size=1, max_size=3)),
)
matchers = st.recursive(
    leaf_matchers,
    lambda children: st.one_of(
        st.builds(lambda m: {"all": m}, st.lists(children, max_size=3)),
        st.builds(lambda m: {"any": m}, st.lists(children, max_size=3)),
        st.builds(lambda m: {"not": m}, children),
    ),
    max_leaves=6,
)


@st.composite
def tier_specs(draw) -> dict:
    """Four tiers obeying the invariant and monotony: strictness and quorum never fall as tiers rise."""
    floor = {"low": 0, "medium": 0, "high": 1, "critical": 1}  # high and critical: assist or blocked
    strictness, quorum, specs = 0, 1, {}
    for tier in TIERS:
        strictness = draw(st.integers(max(strictness, floor[tier]), 2))
        mode = next(m for m in MODES if MODE_STRICTNESS[m] == strictness)
        if mode != "assist":
            specs[tier] = {"mode": mode}
            continue
        quorum = draw(st.integers(max(quorum, 2 if tier == "critical" else 1), 5))
        timeout = draw(st.integers(60, 7200))
        ladder = draw(st.lists(st.integers(1, timeout - 1), unique=True, max_size=3).map(sorted))
        specs[tier] = {
            "mode": "assist",
            "quorum": quorum,
            "approval_timeout_seconds": timeout,
            "escalation": [{"after_seconds": s, "level": i + 1} for i, s in enumerate(ladder)],
        }
    return specs


@st.composite
def contents(draw) -> dict:
    raises = draw(
        st.lists(st.tuples(matchers, st.sampled_from(TIERS), st.sampled_from(RAISE_REASONS)), max_size=4)
    )
    denies = draw(st.lists(st.tuples(matchers, st.sampled_from(DENY_REASONS)), max_size=2))
    return {
        "tiers": draw(tier_specs()),
        "rules": [
            {"id": f"raise-{i}", "when": when, "raise_to": to, "reason": reason}
            for i, (when, to, reason) in enumerate(raises)
        ],
        "deny": [
            {"id": f"deny-{i}", "when": when, "reason": reason} for i, (when, reason) in enumerate(denies)
        ],
    }


inputs = st.fixed_dictionaries(
    {},
    optional={
        "target": st.fixed_dictionaries(
            {}, optional={"environment": SCALARS, "replicas": st.one_of(st.integers(-3, 20), st.booleans())}
        ),
        "note": SCALARS,
    },
)
steps = st.builds(StepFacts, action=st.sampled_from(ACTIONS), tier=st.sampled_from(TIERS), inputs=inputs)
contexts = st.builds(
    Context,
    environment=st.sampled_from(ENVIRONMENTS),
    principal_kind=st.sampled_from(KINDS),
    principal=st.just("acme/someone"),
    tenant=st.sampled_from(["acme", "other"]),
    labels=st.dictionaries(st.just("team"), st.sampled_from(["db", "web"])),
)
profile_environments = st.sampled_from(ENVIRONMENTS)
# What an autonomous tier might be (wrongly) given besides its mode: schema-valid values.
AUTONOMOUS_EXTRAS = st.fixed_dictionaries(
    {}, optional={"quorum": st.integers(1, 10), "approval_timeout_seconds": st.integers(60, 7200)}
)


def _parse(content: dict, environment: str) -> ProfileContent:
    return ProfileContent.from_content(content, name="generated", version=1, environment=environment)


@settings(max_examples=300)
@given(content=contents(), environment=profile_environments, step=steps, context=contexts)
def test_evaluation_is_deterministic_and_canonical(content, environment, step, context):
    first = evaluate(step=step, context=context, profile=_parse(content, environment))
    second = evaluate(step=step, context=context, profile=_parse(copy.deepcopy(content), environment))
    assert first.as_dict() == second.as_dict()
    assert first.decision_hash == second.decision_hash
    canonical_bytes(first.as_dict())  # JSON, no floats, canonicalisable


@settings(max_examples=300)
@given(content=contents(), environment=profile_environments, step=steps, context=contexts)
def test_tiers_only_go_up(content, environment, step, context):
    decision = evaluate(step=step, context=context, profile=_parse(content, environment))
    assert TIER_RANK[decision.tier] >= TIER_RANK[step.tier]
    raised_to = [
        r["raise_to"] for r in content["rules"] if matches(r["when"], step, context)
    ]  # the effective tier is exactly the highest of the base tier and every matching raise
    assert decision.tier == max([step.tier, *raised_to], key=TIER_RANK.__getitem__)


@settings(max_examples=500)
@given(content=contents(), environment=profile_environments, step=steps, context=contexts)
def test_high_and_critical_never_run_without_approval(content, environment, step, context):
    decision = evaluate(step=step, context=context, profile=_parse(content, environment))
    if decision.tier in ("high", "critical"):
        assert decision.verdict != "allow"
        assert decision.effective_verdict != "allow"
        if decision.effective_verdict == "require_approval":
            assert decision.quorum >= (2 if decision.tier == "critical" else 1)


@settings(max_examples=300)
@given(content=contents(), environment=profile_environments, step=steps, context=contexts)
def test_deny_overrides(content, environment, step, context):
    decision = evaluate(step=step, context=context, profile=_parse(content, environment))
    if any(matches(rule["when"], step, context) for rule in content["deny"]):
        assert decision.verdict == "deny"
    always = {"id": "always", "when": {"all": []}, "reason": "POLICY_DENY_DANGEROUS_ACTION"}
    with_deny = {**content, "deny": [*content["deny"], always]}
    denied = evaluate(step=step, context=context, profile=_parse(with_deny, environment))
    assert denied.verdict == "deny"
    assert "POLICY_DENY_DANGEROUS_ACTION" in denied.reason_codes
    assert denied.effective_verdict == "deny" or not denied.enforced


@settings(max_examples=300)
@given(content=contents(), environment=profile_environments, step=steps, context=contexts)
def test_rule_order_does_not_change_the_outcome(content, environment, step, context):
    reordered = {
        **content,
        "rules": list(reversed(content["rules"])),
        "deny": list(reversed(content["deny"])),
    }
    a = evaluate(step=step, context=context, profile=_parse(content, environment))
    b = evaluate(step=step, context=context, profile=_parse(reordered, environment))
    assert (a.verdict, a.enforced, a.effective_verdict, a.tier, a.quorum) == (
        b.verdict,
        b.enforced,
        b.effective_verdict,
        b.tier,
        b.quorum,
    )
    assert set(a.reason_codes) == set(b.reason_codes)


@settings(max_examples=300)
@given(content=contents(), tier=st.sampled_from(["high", "critical"]), extra=AUTONOMOUS_EXTRAS)
def test_no_content_making_high_or_critical_autonomous_validates(content, tier, extra):
    content["tiers"][tier] = {"mode": "autonomous", **extra}
    try:
        profile_content_validate(content)
    except ControlPlaneError as refused:
        assert refused.code == "POLICY_PROFILE_INVALID"
        assert refused.extra["path"] == f"tiers.{tier}.mode"
    else:
        raise AssertionError("an autonomous high/critical tier was accepted")
