"""Reads of the skills registry: resolving an action name (and optional version) to its contract."""

from __future__ import annotations

from typing import Any

from packaging.version import InvalidVersion, Version

from skills.models import ActionContract, SkillStatus


def _version_key(contract: ActionContract) -> tuple[int, Version | str]:
    try:
        return (1, Version(contract.version))
    except InvalidVersion:
        return (0, contract.version)


def action_get(*, name: str, version: str | None = None) -> ActionContract | None:
    """The installed contract for `name` at `version`, or the newest installed version; None if none."""
    contracts = ActionContract.objects.filter(name=name, skill__status=SkillStatus.INSTALLED).select_related(
        "skill"
    )
    if version is not None:
        return contracts.filter(version=version).first()
    return max(contracts, key=_version_key, default=None)


def contract_resolver(name: str, version: str | None) -> dict[str, Any] | None:
    """The resolver plan compilation uses: contracts as plain data."""
    contract = action_get(name=name, version=version)
    return contract.as_contract() if contract else None
