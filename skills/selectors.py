"""Reads of the skills registry: resolving an action to its contract, listing skills, the install review.

The runtime resolves every plan step's action here. An action answers only while its skill is installed
and verified: `contract_resolver` refuses an action whose skill is disabled, quarantined or superseded with
SKILL_NOT_ACTIVE (or SKILL_KEY_REVOKED), and re-verifies a skill cheaply when the trust store moved since
it was last verified (one revision read per lookup; the full check only when the revision differs).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from packaging.version import InvalidVersion, Version

from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy.models import RiskTier
from skills.models import ActionContract, Skill, SkillStatus, TrustRevision

TIER_ORDER = [RiskTier.LOW, RiskTier.MEDIUM, RiskTier.HIGH, RiskTier.CRITICAL]


def _version_key(contract: ActionContract) -> tuple[int, Version | str]:
    try:
        return (1, Version(contract.version))
    except InvalidVersion:
        return (0, contract.version)


def trust_revision() -> int:
    """The trust store's current revision (0 before any change)."""
    return TrustRevision.objects.filter(pk=1).values_list("revision", flat=True).first() or 0


def _still_verified(skill: Skill) -> bool:
    """A built-in skill always; a signed one verified at the current revision, or re-verified now."""
    if skill.trusted or skill.verified_revision == trust_revision():
        return True
    from skills.verification import installed_check

    return installed_check(skill=skill, now=timezone.now()).ok


def action_get(*, name: str, version: str | None = None) -> ActionContract | None:
    """The contract for `name` at `version` (or the newest) of an installed, verified skill; None if none."""
    contracts = ActionContract.objects.filter(name=name, skill__status=SkillStatus.INSTALLED).select_related(
        "skill"
    )
    if version is not None:
        contract = contracts.filter(version=version).first()
    else:
        contract = max(contracts, key=_version_key, default=None)
    if contract is not None and not _still_verified(contract.skill):
        return None
    return contract


def contract_resolver(name: str, version: str | None) -> dict[str, Any] | None:
    """The resolver plan compilation uses: contracts as plain data; None for an action no skill provides.

    Raises `ControlPlaneError` SKILL_NOT_ACTIVE (SKILL_KEY_REVOKED when quarantined for it) for an action
    whose skill exists but is not installed and verified; the compiler refuses the step with that code."""
    contract = action_get(name=name, version=version)
    if contract is not None:
        return contract.as_contract()
    known = ActionContract.objects.filter(name=name).select_related("skill")
    if version is not None:
        known = known.filter(version=version)
    inactive = known.order_by("-skill__installed_at").first()
    if inactive is None:
        return None
    skill = inactive.skill
    code = "SKILL_KEY_REVOKED" if "SKILL_KEY_REVOKED" in (skill.status_codes or []) else "SKILL_NOT_ACTIVE"
    status = skill.status if skill.status != SkillStatus.INSTALLED else "no longer verified"
    raise ControlPlaneError(code, f"{inactive} comes from {skill}, which is {status}")


def skill_list(*, include_superseded: bool = False):
    """Skills with their actions, newest version first per name."""
    skills = Skill.objects.prefetch_related("actions").order_by("name", "-installed_at")
    if not include_superseded:
        skills = skills.exclude(status=SkillStatus.SUPERSEDED)
    return skills


def skill_current(*, name: str) -> Skill | None:
    """The installed (or disabled / quarantined) version of a skill: the one not superseded."""
    return skill_list().filter(name=name).first()


def _tier_rank(tier: str) -> int:
    return TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)


def _widened(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a new input schema accepts that the old did not, at the top level (a review aid, not a proof)."""
    notes = []
    old_props, new_props = set(old.get("properties", {})), set(new.get("properties", {}))
    if added := sorted(new_props - old_props):
        notes.append("new inputs: " + ", ".join(added))
    if removed := sorted(set(old.get("required", [])) - set(new.get("required", []))):
        notes.append("no longer required: " + ", ".join(removed))
    if old.get("additionalProperties") is False and new.get("additionalProperties") is not False:
        notes.append("accepts any other input")
    return notes


def install_review(*, manifest: dict[str, Any], installed: Skill | None) -> dict[str, Any]:
    """What installing `manifest` newly allows compared with the installed version: actions added and
    removed, risk tiers raised, capabilities newly needed, blast radius grown, input schemas widened."""
    old = {a["name"]: a for a in (installed.manifest.get("actions", []) if installed else [])}
    new = {a["name"]: a for a in manifest["actions"]}
    changes: list[dict[str, Any]] = []
    for name in sorted(new):
        action, before = new[name], old.get(name)
        if before is None:
            changes.append(
                {
                    "action": name,
                    "change": "added",
                    "risk_tier": action["risk_tier"],
                    "capabilities": sorted(action.get("capabilities", [])),
                    "blast_radius": action.get("blast_radius"),
                }
            )
            continue
        entry: dict[str, Any] = {"action": name, "change": "changed"}
        if _tier_rank(action["risk_tier"]) > _tier_rank(before.get("risk_tier", "low")):
            entry["risk_tier_raised"] = [before.get("risk_tier"), action["risk_tier"]]
        if caps := sorted(set(action.get("capabilities", [])) - set(before.get("capabilities", []))):
            entry["capabilities_added"] = caps
        old_max = (before.get("blast_radius") or {}).get("max_targets", 0)
        if action["blast_radius"]["max_targets"] > old_max:
            entry["blast_radius_grown"] = [old_max, action["blast_radius"]["max_targets"]]
        if widened := _widened(before.get("input_schema", {}), action["input_schema"]):
            entry["input_schema_widened"] = widened
        if len(entry) > 2:
            changes.append(entry)
    changes += [{"action": name, "change": "removed"} for name in sorted(set(old) - set(new))]
    return {
        "skill": manifest["name"],
        "from_version": installed.version if installed else None,
        "to_version": manifest["version"],
        "highest_risk_tier": max((a["risk_tier"] for a in manifest["actions"]), key=_tier_rank),
        "changes": changes,
    }


def install_queue_context(rows: list[Any]) -> None:
    """The approval queue's `skills.install` rows link the install review page (the diff approved)."""
    from django.urls import reverse

    for row in rows:
        row.links.append(("install review", reverse("skills:install-review", args=[row.approval.pk])))


def install_request_get(*, request_id: str):
    """One install request (pending or decided) with what its approvers saw; None if there is none."""
    from skills.models import InstallRequest

    return InstallRequest.objects.filter(pk=request_id).first()


def action_dispatch_refusal(*, name: str, version: str) -> tuple[str, str] | None:
    """Why a step of this action must not be dispatched now, as (code, words), or None when it may go.

    Asked by the runtime's skill gate at dispatch (a cheap read, no signature check unless the trust store
    moved): the skill is disabled (SKILL_DISABLED: its steps wait), quarantined for a revoked key
    (SKILL_KEY_REVOKED), otherwise not installed and verified (SKILL_NOT_ACTIVE), or its stored manifest no
    longer hashes to the one its install recorded on the ledger (SKILL_MANIFEST_CHANGED)."""
    contract = ActionContract.objects.filter(name=name, version=version).select_related("skill").first()
    if contract is None:
        return None  # an action no skill registered (a test executor): the executor lookup answers for it
    skill = contract.skill
    if skill.status == SkillStatus.DISABLED:
        return "SKILL_DISABLED", f"{skill} is disabled: {skill.status_reason}"
    if skill.status == SkillStatus.QUARANTINED and "SKILL_KEY_REVOKED" in (skill.status_codes or []):
        return "SKILL_KEY_REVOKED", f"{skill} is quarantined: {skill.status_reason}"
    if skill.status != SkillStatus.INSTALLED:
        return "SKILL_NOT_ACTIVE", f"{skill} is {skill.status}"
    if not _still_verified(skill):
        return "SKILL_NOT_ACTIVE", f"{skill} no longer verifies against the trust store"
    if (changed := _manifest_changed(skill)) is not None:
        return "SKILL_MANIFEST_CHANGED", changed
    return None


def _manifest_changed(skill: Skill) -> str | None:
    """The installed manifest against the hash its install recorded on the ledger (for a signed skill; the
    built-in one against the code)."""
    from controlplane.ledger.models import LedgerEvent
    from skills.verification import manifest_hash

    actual = manifest_hash(skill.manifest)
    if skill.trusted:
        from skills.core import CORE_SKILL

        expected = manifest_hash(CORE_SKILL)
    else:
        expected = (
            LedgerEvent.objects.filter(
                type="controlplane.skill.installed",
                subject=f"skill/{skill.name}",
                data__version=skill.version,
            )
            .order_by("-seq")
            .values_list("data__manifest_sha256", flat=True)
            .first()
        )
    if expected is not None and actual == expected == skill.manifest_hash:
        return None
    return f"{skill}'s manifest hashes to {actual[:12]}…, its install recorded {str(expected)[:12]}…"


def action_capabilities(*, name: str, version: str) -> list[str] | None:
    """The capabilities the action's manifest declared (None: no skill registered the action)."""
    contracts = ActionContract.objects.filter(name=name, version=version)
    return contracts.values_list("capabilities", flat=True).first()


def action_compensation(*, name: str, version: str) -> dict[str, Any] | None:
    """The compensating action the action's manifest declares (action, version, input_mapping), or None."""
    contracts = ActionContract.objects.filter(name=name, version=version)
    return contracts.values_list("compensating_action", flat=True).first()
