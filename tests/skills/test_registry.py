"""The core skill is installed by migration and resolves for plan compilation."""

from __future__ import annotations

import pytest

from controlplane.kernel.errors import ControlPlaneError
from controlplane.runtime.compiler import plan_compile
from skills.models import ActionContract, Skill, SkillStatus
from skills.selectors import action_get, contract_resolver

pytestmark = pytest.mark.django_db


def test_core_skill_is_installed_and_trusted():
    core = Skill.objects.get(name="core")
    assert core.trusted and core.status == SkillStatus.INSTALLED
    assert sorted(core.actions.values_list("name", flat=True)) == ["http.webhook", "noop.echo"]


def test_newest_version_is_resolved_unless_one_is_named():
    core = Skill.objects.get(name="core")
    echo = ActionContract.objects.get(name="noop.echo")
    ActionContract.objects.create(
        skill=core,
        name="noop.echo",
        version="1.10.0",
        input_schema=echo.input_schema,
        output_schema=echo.output_schema,
        risk_tier="low",
        executor="noop.echo",
    )
    assert action_get(name="noop.echo").version == "1.10.0"  # numeric, not lexical, ordering
    assert action_get(name="noop.echo", version="1.0.0").version == "1.0.0"
    assert action_get(name="nope") is None


def test_a_disabled_skill_provides_no_actions():
    Skill.objects.filter(name="core").update(status=SkillStatus.DISABLED)
    assert action_get(name="noop.echo") is None
    with pytest.raises(ControlPlaneError) as refusal:
        contract_resolver("noop.echo", None)
    assert refusal.value.code == "SKILL_NOT_ACTIVE"
    assert contract_resolver("never.published", None) is None


def test_compilation_resolves_through_the_registry():
    plan = plan_compile(
        draft={"goal": "g", "steps": [{"key": "a", "action": "noop.echo", "inputs": {}}]},
        resolve=contract_resolver,
        tenant="acme",
    )
    assert plan.steps[0].action_version == "1.0.0"
