"""Every write of the skills registry and its trust store, each with its ledger event in the same transaction.

Skills and publishers are platform-scope (installation-wide): their events carry no tenant. Refused
installs are recorded as `controlplane.skill.rejected` (with the codes) and change nothing else.

- `trust`: the publisher trust store (add, rotate, revoke a key) and re-checking installed skills;
- `installs`: install (as a `skills.install` approval for a person), its resolver, disable, enable;
- `common`: the ledger source, the actor, reasons, the platform check.
"""

from __future__ import annotations

from skills.services.common import INSTALL_SUBJECT, SOURCE, trust_revision_bump
from skills.services.installs import (
    install_approval_resolve,
    skill_disable,
    skill_enable,
    skill_install,
    skill_install_request,
)
from skills.services.trust import publisher_add, publisher_key_revoke, publisher_rotate, skills_recheck

__all__ = [
    "INSTALL_SUBJECT",
    "SOURCE",
    "install_approval_resolve",
    "publisher_add",
    "publisher_key_revoke",
    "publisher_rotate",
    "skill_disable",
    "skill_enable",
    "skill_install",
    "skill_install_request",
    "skills_recheck",
    "trust_revision_bump",
]
