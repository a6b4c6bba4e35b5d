"""Content validation: every refusal is POLICY_PROFILE_INVALID with the exact path at fault."""

from __future__ import annotations

import pytest

from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy.content import content_hash, format_path, profile_content_validate
from controlplane.policy.shipped import DEV_CONTENT, STRICT_CONTENT
from tests.policy.factories import content

ASSIST = {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600}


def _rule(when, **extra):
    return {"id": "r", "when": when, "raise_to": "high", "reason": "POLICY_TIER_RAISED_PROD_TARGET", **extra}


def _nested_not(depth: int) -> dict:
    matcher: dict = {"tenant": "acme"}
    for _ in range(depth - 1):
        matcher = {"not": matcher}
    return matcher


INVALID = [
    ([], "$", "is not of type 'object'"),
    ({"tiers": {}, "rules": []}, "$", "'deny' is a required property"),
    (content(extra=1), "$", "Additional properties are not allowed"),
    (content(tiers={"medium": {**ASSIST, "quorum": 1.0}}), "tiers.medium.quorum", "floats are not allowed"),
    (content(tiers={"low": {"mode": "sometimes"}}), "tiers.low.mode", "'sometimes' is not one of"),
    (content(tiers={"high": {"mode": "autonomous"}}), "tiers.high.mode", "high steps are never autonomous"),
    (
        content(tiers={"critical": {"mode": "autonomous"}}),
        "tiers.critical.mode",
        "critical steps are never autonomous",
    ),
    (
        content(tiers={"critical": {**ASSIST, "quorum": 1}}),
        "tiers.critical.quorum",
        "critical steps need at least 2 approvers",
    ),
    (
        content(tiers={"medium": {"mode": "assist", "quorum": 1}}),
        "tiers.medium.approval_timeout_seconds",
        "required",
    ),
    (content(tiers={"low": {"mode": "autonomous", "quorum": 1}}), "tiers.low.quorum", "only an assist tier"),
    (
        content(tiers={"low": {"mode": "blocked"}}),
        "tiers.medium.mode",
        "medium (assist) is less strict than low (blocked)",
    ),
    (
        content(tiers={"medium": {**ASSIST, "quorum": 3}}),
        "tiers.high.quorum",
        "high needs at least the quorum of medium",
    ),
    (
        content(
            tiers={
                "medium": {
                    **ASSIST,
                    "escalation": [{"after_seconds": 300, "level": 2}, {"after_seconds": 400, "level": 1}],
                }
            }
        ),
        "tiers.medium.escalation[1]",
        "the ladder must climb",
    ),
    (
        content(tiers={"medium": {**ASSIST, "escalation": [{"after_seconds": 600, "level": 1}]}}),
        "tiers.medium.escalation[0]",
        "before approval_timeout_seconds",
    ),
    (content(rules=[_rule({"bogus": 1})]), "rules[0].when", "'bogus' is not one of"),
    (content(rules=[_rule({"tenant": "a", "action": "b"})]), "rules[0].when", "has too many properties"),
    (content(rules=[_rule({})]), "rules[0].when", "should be non-empty"),
    (
        content(
            rules=[_rule({"all": [{"tenant": "a"}, {"input": {"path": "a", "equals": 1, "exists": True}}]})]
        ),
        "rules[0].when.all[1].input",
        "has too many properties",
    ),
    (
        content(rules=[_rule({"input": {"path": "a..b", "exists": True}})]),
        "rules[0].when.input.path",
        "match",
    ),
    (
        content(rules=[_rule({"principal_kind": "robot"})]),
        "rules[0].when.principal_kind",
        "'robot' is not one of",
    ),
    (
        content(rules=[_rule({"tenant": "a"}, raise_to="extreme")]),
        "rules[0].raise_to",
        "'extreme' is not one of",
    ),
    (
        content(rules=[_rule({"tenant": "a"}, reason="POLICY_DENY_RISK_TIER")]),
        "rules[0].reason",
        "does not match",
    ),
    (
        content(deny=[{"id": "d", "when": {"tenant": "a"}, "reason": "POLICY_DENY_NOT_IN_CATALOGUE"}]),
        "deny[0].reason",
        "is not in the reason-code catalogue",
    ),
    (
        content(
            rules=[_rule({"tenant": "a"})],
            deny=[{"id": "r", "when": {"tenant": "a"}, "reason": "POLICY_DENY_RISK_TIER"}],
        ),
        "deny[0].id",
        "duplicate rule id 'r'",
    ),
    (
        content(rules=[_rule(_nested_not(9))]),
        "rules[0].when.not.not.not.not.not.not.not.not",
        "at most 8 deep",
    ),
]


@pytest.mark.parametrize(("value", "path", "message"), INVALID)
def test_invalid_content_is_refused_with_the_path_at_fault(value, path, message):
    with pytest.raises(ControlPlaneError) as refused:
        profile_content_validate(value)
    assert refused.value.code == "POLICY_PROFILE_INVALID"
    assert refused.value.extra == {"path": path}
    assert refused.value.detail.startswith(f"{path}: ")
    assert message in refused.value.detail


@pytest.mark.parametrize(
    "value", [content(), STRICT_CONTENT, DEV_CONTENT, content(rules=[_rule(_nested_not(8))])]
)
def test_valid_content_passes(value):
    profile_content_validate(value)


def test_a_blocked_critical_tier_needs_no_quorum():
    profile_content_validate(content(tiers={"critical": {"mode": "blocked"}}))


def test_content_hash_is_independent_of_key_order():
    reordered = dict(reversed(list(content().items())))
    assert content_hash(reordered) == content_hash(content())


def test_format_path():
    assert format_path(["rules", 0, "when", "all", 1]) == "rules[0].when.all[1]"
    assert format_path([]) == "$"
