"""What `manage.py governance validate` checks of skills: every installed skill re-verifies now
(signatures, threshold, trust at now: GOVERNANCE_SKILL_UNVERIFIED), is compatible with the current
contracts and the plugins present (GOVERNANCE_INCOMPATIBLE), and its manifest validates against the
shipped manifest schema (GOVERNANCE_SCHEMA_INVALID). Registered from `SkillsConfig.ready()`."""

from __future__ import annotations

from collections.abc import Iterator

from django.utils import timezone

from controlplane.kernel.governance import Check, Finding, schema_findings
from skills.models import Skill, SkillStatus
from skills.verification import installed_check, manifest_schema


def skills_reverify() -> Iterator[Finding]:
    now = timezone.now()
    for skill in Skill.objects.filter(status=SkillStatus.INSTALLED).order_by("name", "version"):
        ref = f"skill/{skill.name}@{skill.version}"
        yield from schema_findings(
            code="GOVERNANCE_SCHEMA_INVALID",
            object=ref,
            instance=skill.manifest,
            schema=manifest_schema(),
            prefix="/manifest",
        )
        for check in installed_check(skill=skill, now=now).checks:
            if check.ok:
                continue
            code = (
                "GOVERNANCE_INCOMPATIBLE" if check.name == "compatibility" else "GOVERNANCE_SKILL_UNVERIFIED"
            )
            yield Finding(code, ref, f"/checks/{check.name}", f"{check.code}: {check.detail}")


CHECK = Check(
    "skills",
    "Every installed skill re-verifies now, is compatible, and its manifest matches the shipped schema.",
    ("GOVERNANCE_SKILL_UNVERIFIED", "GOVERNANCE_INCOMPATIBLE", "GOVERNANCE_SCHEMA_INVALID"),
    skills_reverify,
)
