"""Plan compilation is deterministic and refuses bad drafts with the right reason code and step."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.kernel.canonical import canonical_bytes
from controlplane.runtime.compiler import PlanRejected, plan_compile
from skills.core import CORE_SKILL

CONTRACTS = {(a["name"], a["version"]): a for a in CORE_SKILL["actions"]}


def resolve(name, version):
    if version is None:
        versions = sorted(v for (n, v) in CONTRACTS if n == name)
        version = versions[-1] if versions else None
    return CONTRACTS.get((name, version))


def draft(*steps, goal="restart checkout", context=None):
    return {"goal": goal, "context": context or {"ticket": "OPS-1"}, "steps": list(steps)}


def step(key, action="noop.echo", inputs=None, depends_on=(), **extra):
    return {
        "key": key,
        "action": action,
        "inputs": inputs if inputs is not None else {"message": key},
        "depends_on": list(depends_on),
        **extra,
    }


def test_compiles_a_dag_in_dependency_order_with_derived_keys():
    plan = plan_compile(
        draft=draft(step("c", depends_on=["a", "b"]), step("b", depends_on=["a"]), step("a")),
        resolve=resolve,
        tenant="acme",
    )
    assert [s.key for s in plan.steps] == ["a", "b", "c"]
    assert plan.steps[2].depends_on == ("a", "b")
    assert len(plan.plan_id) == 64 and len({s.execution_key for s in plan.steps}) == 3
    assert plan.steps[0].risk_tier == "low" and plan.steps[0].executor == "noop.echo"


def test_same_draft_same_ids():
    first = plan_compile(draft=draft(step("a"), step("b", depends_on=["a"])), resolve=resolve, tenant="acme")
    second = plan_compile(draft=draft(step("a"), step("b", depends_on=["a"])), resolve=resolve, tenant="acme")
    assert (
        first.plan_id == second.plan_id
        and first.steps == second.steps
        and first.canonical == second.canonical
    )


def test_any_change_changes_the_plan_id():
    base = plan_compile(draft=draft(step("a")), resolve=resolve, tenant="acme").plan_id
    assert (
        plan_compile(
            draft=draft(step("a", inputs={"message": "other"})), resolve=resolve, tenant="acme"
        ).plan_id
        != base
    )
    assert (
        plan_compile(draft=draft(step("a"), goal="another goal"), resolve=resolve, tenant="acme").plan_id
        != base
    )
    assert (
        plan_compile(
            draft=draft(step("a"), context={"ticket": "OPS-2"}), resolve=resolve, tenant="acme"
        ).plan_id
        != base
    )


@given(st.permutations(["a", "b", "c", "d"]))
def test_draft_order_does_not_matter(order):
    steps = {
        "a": step("a"),
        "b": step("b", depends_on=["a"]),
        "c": step("c", depends_on=["a"]),
        "d": step("d", depends_on=["b", "c"]),
    }
    plan = plan_compile(draft=draft(*[steps[k] for k in order]), resolve=resolve, tenant="acme")
    reference = plan_compile(draft=draft(*[steps[k] for k in "abcd"]), resolve=resolve, tenant="acme")
    assert plan.plan_id == reference.plan_id
    assert [s.key for s in plan.steps] == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("bad", "code", "at_step"),
    [
        (draft(step("a"), step("a")), "PLAN_DUPLICATE_STEP", "a"),
        (draft(step("a", depends_on=["ghost"])), "PLAN_UNKNOWN_DEPENDENCY", "a"),
        (draft(step("a", depends_on=["b"]), step("b", depends_on=["a"])), "PLAN_CYCLE", "a"),
        (draft(step("a", depends_on=["a"])), "PLAN_CYCLE", "a"),
        (draft(step("a", action="rm.rf")), "PLAN_UNKNOWN_ACTION", "a"),
        (draft(step("a", action="noop.echo", version="9.9.9")), "PLAN_UNKNOWN_ACTION", "a"),
        (
            draft(step("a"), step("w", action="http.webhook", inputs={"runner": "r1"})),
            "PLAN_INPUT_INVALID",
            "w",
        ),
        (draft(step("a", inputs={"message": 42})), "PLAN_INPUT_INVALID", "a"),
        (draft(), "PLAN_INVALID", None),
        ({"goal": "", "steps": [step("a")]}, "PLAN_INVALID", None),
        (draft({"key": "Bad Key!", "action": "noop.echo"}), "PLAN_INVALID", None),
    ],
)
def test_refusals_name_the_code_and_the_step(bad, code, at_step):
    with pytest.raises(PlanRejected) as caught:
        plan_compile(draft=copy.deepcopy(bad), resolve=resolve, tenant="acme")
    assert caught.value.code == code
    assert caught.value.step == at_step


def test_input_errors_name_the_schema_path():
    bad = draft(
        step(
            "w",
            action="http.webhook",
            inputs={"runner": "r1", "operation": "x", "target": {"environment": "mars"}},
        )
    )
    with pytest.raises(PlanRejected) as caught:
        plan_compile(draft=bad, resolve=resolve, tenant="acme")
    assert caught.value.extra["path"] == "inputs.target.environment"
    assert "'mars' is not one of" in caught.value.detail


def test_two_tenants_identical_drafts_get_distinct_plans_and_execution_keys():
    """Before the tenant was part of the id, tenants A and B shared one plan and one execution key, so a
    runner shared by both answered B's step with A's stored result."""
    a = plan_compile(draft=draft(step("a")), resolve=resolve, tenant="tenant-a")
    b = plan_compile(draft=draft(step("a")), resolve=resolve, tenant="tenant-b")
    assert a.plan_id != b.plan_id
    assert a.steps[0].execution_key != b.steps[0].execution_key
    assert a.tenant == "tenant-a" and b"tenant-a" in a.canonical


def test_the_older_form_without_a_tenant_keeps_its_ids():
    """Plans recorded before tenant-scoped ids are recompiled (by replay) in their original form."""
    old = plan_compile(draft=draft(step("a")), resolve=resolve, tenant=None)
    body = {
        "goal": "restart checkout",
        "context": {"ticket": "OPS-1"},
        "steps": [
            {
                "key": "a",
                "action": "noop.echo",
                "action_version": old.steps[0].action_version,
                "contract_hash": old.steps[0].contract_hash,
                "inputs": {"message": "a"},
                "depends_on": [],
            }
        ],
    }
    assert old.canonical == canonical_bytes(body) and b"tenant" not in old.canonical
