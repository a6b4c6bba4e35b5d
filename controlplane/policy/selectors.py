"""Reads of policy: the active profile, a profile by name and version, and explain.

`explain` is how the runtime (plan.verify), the API and the CLI get a PolicyDecision: it picks the profile
(given, or the one active for the environment) and calls the pure `evaluate`. With no active profile
the decision is a deny with POLICY_MISSING (fail closed).
"""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy.evaluation import Context, PolicyDecision, StepFacts, evaluate
from controlplane.policy.models import PolicyProfile, ProfileStatus


def active_profile(*, environment: str) -> PolicyProfile | None:
    """The profile active for the environment, or None (evaluation then fails closed)."""
    return PolicyProfile.objects.filter(environment=environment, status=ProfileStatus.ACTIVE).first()


def profile_list(*, environment: str | None = None, name: str | None = None) -> QuerySet[PolicyProfile]:
    """Profiles, newest version first within a name, optionally of one environment or one name."""
    profiles = PolicyProfile.objects.all()
    if environment:
        profiles = profiles.filter(environment=environment)
    if name:
        profiles = profiles.filter(name=name)
    return profiles.order_by("name", "-version")


def profile_get(*, name: str, version: int | None = None) -> PolicyProfile:
    """A profile by name and version (the newest version when none is given), or POLICY_PROFILE_NOT_FOUND."""
    profiles = PolicyProfile.objects.filter(name=name)
    profile = profiles.filter(version=version).first() if version else profiles.order_by("-version").first()
    if profile is None:
        suffix = f" version {version}" if version else ""
        raise ControlPlaneError("POLICY_PROFILE_NOT_FOUND", f"no policy profile {name}{suffix}")
    return profile


def explain(
    *,
    step: StepFacts,
    context: Context,
    environment: str | None = None,
    profile: PolicyProfile | None = None,
) -> PolicyDecision:
    """The decision for a real or hypothetical step, with its rule trail.

    Uses `profile` when given (e.g. a draft, to see what activating it would do), otherwise the profile
    active for `environment` (default: the context's environment).
    """
    if profile is None:
        profile = active_profile(environment=environment or context.environment)
    return evaluate(step=step, context=context, profile=profile.as_content() if profile else None)


def active_profile_banner(*, environment: str) -> str:
    """One line for the start-up banner: the active profile and its hash, or why there is none."""
    try:
        profile = active_profile(environment=environment)
    except Exception as exc:  # no table yet, no database, no DB access: say so, never fail start-up
        return f"policy=unavailable ({type(exc).__name__})"
    if profile is None:
        return "policy=none (POLICY_MISSING: every step is denied; run `manage.py policy bootstrap`)"
    return f"policy={profile.ref} policy_hash={profile.content_hash}"
