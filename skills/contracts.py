"""The skills app's contracts: install, disable, list, verify, and the events of skills and publishers."""

from __future__ import annotations

from controlplane.kernel.contracts import (
    COMMAND,
    HEX64,
    QUERY,
    TEXT,
    Contract,
    event_contract,
    obj,
    schema,
)
from skills.capabilities import MANAGE, READ

OWNER = "skills"
COVERS = ("controlplane.skill.",)

ENVELOPE = obj(
    {
        "payload": {"type": "string"},
        "payloadType": {"type": "string"},
        "signatures": {"type": "array", "items": {"type": "object"}},
    },
    description="A DSSE v1 envelope over a skill-manifest/v1 document (docs/skills.md).",
)
ENVELOPE["additionalProperties"] = True  # DSSE: unknown fields are ignored
VERSION = {"type": "string", "minLength": 1}
BUNDLE = {"type": "object", "additionalProperties": HEX64, "description": "path -> SHA-256 of the bundle"}
REVISION = {"type": "integer", "minimum": 0}
KEY = obj(
    {
        "key_id": HEX64,
        "scheme": TEXT,
        "public_key": TEXT,
        "valid_from": TEXT,
        "valid_until": {"type": ["string", "null"]},
    }
)

CONTRACTS = [
    Contract(
        "skill.install",
        COMMAND,
        OWNER,
        "Verify a signed skill against the trust store as of now and ask to install it: a skills.install "
        "approval request bound to the envelope's hash, showing the install review (what the upgrade newly "
        "allows); installed on approval. Refusals carry a SKILL_* code.",
        schema(
            obj(
                {"envelope": ENVELOPE, "reason": TEXT},
                {"bundle": {"type": "object", "additionalProperties": {"type": "string"}}},
            )
        ),
        api=("POST /api/v1/skills/install/",),
        service="skills.services.skill_install_request",
        cli=("manage.py skills install ENVELOPE --reason R [--bundle DIR]",),
        capability=MANAGE,
    ),
    Contract(
        "skill.disable",
        COMMAND,
        OWNER,
        "Disable a skill: its actions stop compiling (SKILL_NOT_ACTIVE); its steps not yet dispatched are "
        "held (SKILL_DISABLED) until it is enabled.",
        schema(obj({"name": TEXT, "reason": TEXT})),
        api=("POST /api/v1/skills/{name}/disable/",),
        service="skills.services.skill_disable",
        cli=("manage.py skills disable NAME --reason R",),
        capability=MANAGE,
    ),
    Contract(
        "skill.enable",
        COMMAND,
        OWNER,
        "Enable a disabled skill after re-verifying it; its held steps resume.",
        schema(obj({"name": TEXT, "reason": TEXT})),
        api=("POST /api/v1/skills/{name}/enable/",),
        service="skills.services.skill_enable",
        cli=("manage.py skills enable NAME --reason R",),
        capability=MANAGE,
    ),
    Contract(
        "skill.list",
        QUERY,
        OWNER,
        "Installed skills with their versions, publisher, status and actions.",
        schema(obj({}, {"include_superseded": {"type": "boolean"}})),
        api=("GET /api/v1/skills/", "GET /api/v1/skills/{name}/"),
        service="skills.selectors.skill_list",
        cli=("manage.py skills list",),
        capability=READ,
    ),
    Contract(
        "skill.verify",
        QUERY,
        OWNER,
        "Run every check on an envelope (dry run) or re-verify an installed skill; writes nothing.",
        schema(obj({}, {"envelope": ENVELOPE, "name": TEXT})),
        api=("POST /api/v1/skills/verify/", "GET /api/v1/skills/{name}/verify/"),
        service="skills.verification.envelope_check",
        cli=("manage.py skills verify NAME|ENVELOPE", "manage.py skills verify --all"),
        capability=READ,
    ),
    event_contract(
        "skill.installed",
        OWNER,
        "A verified skill was installed. Subject `skill/<name>`.",
        obj(
            {
                "skill": TEXT,
                "version": VERSION,
                "publisher": TEXT,
                "manifest_sha256": HEX64,
                "envelope_sha256": HEX64,
                "signed_by": {"type": "array", "items": HEX64},
                "revision": REVISION,
                "supersedes": {"type": ["string", "null"]},
                "review": {"type": "object"},
                "reason": TEXT,
            },
            {"envelope": {"type": "object"}, "bundle": BUNDLE},
        ),
        "skills.services.skill_install",
    ),
    event_contract(
        "skill.rejected",
        OWNER,
        "An install was refused; `reason_codes` are every failing check's. Nothing was installed.",
        obj(
            {
                "envelope_sha256": {"type": "string", "pattern": "^([0-9a-f]{64})?$"},
                "skill": {"type": "string"},
                "version": {"type": "string"},
                "detail": TEXT,
            },
            {"envelope": {"type": ["object", "null"]}, "bundle": BUNDLE},
        ),
        "skills.services.skill_install",
    ),
    event_contract(
        "skill.install_requested",
        OWNER,
        "A person asked to install a verified skill; a skills.install approval request was opened.",
        obj(
            {
                "skill": TEXT,
                "version": VERSION,
                "envelope_sha256": HEX64,
                "approval": HEX64,
                "review": {"type": "object"},
                "reason": TEXT,
            }
        ),
        "skills.services.skill_install_request",
    ),
    event_contract(
        "skill.enabled",
        OWNER,
        "A disabled skill was enabled again by a person, with a reason.",
        obj({"skill": TEXT, "version": VERSION, "reason": TEXT}),
        "skills.services.skill_enable",
    ),
    event_contract(
        "skill.disabled",
        OWNER,
        "A skill was disabled by a person, with a reason.",
        obj({"skill": TEXT, "version": VERSION, "reason": TEXT}),
        "skills.services.skill_disable",
    ),
    event_contract(
        "skill.quarantined",
        OWNER,
        "An installed skill no longer passes verification (a key was revoked); its actions stop.",
        obj({"skill": TEXT, "version": VERSION, "detail": TEXT, "revision": REVISION}),
        "skills.services.skills_recheck",
    ),
    event_contract(
        "skill.publisher.added",
        OWNER,
        "A publisher was trusted, with its keys and threshold. Subject `publisher/<name>`.",
        obj(
            {
                "publisher": TEXT,
                "threshold": {"type": "integer", "minimum": 1},
                "keys": {"type": "array", "items": KEY},
                "reason": TEXT,
                "revision": REVISION,
            }
        ),
        "skills.services.publisher_add",
    ),
    event_contract(
        "skill.publisher.key_revoked",
        OWNER,
        "A publisher key was revoked; installed skills are re-checked.",
        obj({"publisher": TEXT, "key_id": HEX64, "reason": TEXT, "revision": REVISION}),
        "skills.services.publisher_key_revoke",
    ),
    event_contract(
        "skill.publisher.rotated",
        OWNER,
        "A publisher's key set and threshold were replaced by a statement signed by a threshold of the old.",
        obj(
            {
                "publisher": TEXT,
                "threshold": {"type": "integer", "minimum": 1},
                "keys": {"type": "array", "items": KEY},
                "signed_by": {"type": "array", "items": HEX64},
                "statement_sha256": HEX64,
                "reason": TEXT,
                "revision": REVISION,
            }
        ),
        "skills.services.publisher_rotate",
    ),
]
