"""Policy test helpers: a small valid content to vary, and profiles made through the services."""

from __future__ import annotations

import copy
from typing import Any

import factory

from controlplane.policy import services
from controlplane.policy.evaluation import ProfileContent
from controlplane.policy.models import PolicyProfile

BASE_CONTENT: dict[str, Any] = {
    "tiers": {
        "low": {"mode": "autonomous"},
        "medium": {
            "mode": "assist",
            "quorum": 1,
            "approval_timeout_seconds": 3600,
            "escalation": [{"after_seconds": 900, "level": 1}],
        },
        "high": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 1800},
        "critical": {"mode": "assist", "quorum": 2, "approval_timeout_seconds": 1800},
    },
    "rules": [],
    "deny": [],
}


def content(**sections: Any) -> dict[str, Any]:
    """A copy of BASE_CONTENT; `tiers={"high": {...}}` replaces single tiers, `rules=[...]` a section."""
    result = copy.deepcopy(BASE_CONTENT)
    for tier, spec in sections.pop("tiers", {}).items():
        result["tiers"][tier] = spec
    result.update(copy.deepcopy(sections))
    return result


def parsed(value: dict[str, Any] | None = None, *, environment: str = "prod") -> ProfileContent:
    return ProfileContent.from_content(
        value or content(), name="test-profile", version=1, environment=environment
    )


class PolicyProfileFactory(factory.Factory):
    """A profile version created (and, with `active=True`, activated) through the services."""

    class Meta:
        model = PolicyProfile

    name = factory.Sequence(lambda n: f"profile-{n}")
    environment = "prod"
    content = factory.LazyFunction(content)
    active = False

    @classmethod
    def _create(cls, model_class: type, *args: Any, active: bool = False, **kwargs: Any) -> PolicyProfile:
        profile = services.profile_create(actor="test", **kwargs).profile
        if active:
            profile = services.profile_activate(profile=profile, actor="test", reason="test set-up")
        return profile
