"""Every check a skill envelope must pass, as of an instant: `envelope_check` (dry run, writes nothing).

Order (each check is reported; the first failure is the refusal's code):
payload type -> manifest schema -> publisher known -> signatures, key validity, threshold -> not expired
-> anti-rollback -> compatibility -> action conflicts. The trust store is read as of `at` (a key revoked
or expired at `at` does not count), so "was this trusted when it was installed" is answerable later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from django.utils.dateparse import parse_datetime
from jsonschema import Draft202012Validator
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from skills import envelopes
from skills.core import CORE_SKILL, executor_name
from skills.models import ActionContract, Publisher, Skill, SkillStatus

SCHEMA_PATH = Path(__file__).with_name("schemas") / "skill-manifest-v1.json"
# The version of the runtime's action contract (step shape, executor call, outcome) skills are written to.
RUNTIME_CONTRACT_VERSION = "1.0.0"
# plugin name -> installed version; filled by whoever knows the plugins present (register_plugin_versions).
_PLUGIN_VERSIONS: list[Any] = []


def register_plugin_inventory(provider: Any) -> None:
    """Register a callable returning {plugin name: version} of the plugins present. The plugins app (above
    skills) registers its inventory from its `ready()`; with none registered no plugin is present, so a
    skill requiring one is refused SKILL_INCOMPATIBLE naming it (fail closed)."""
    if provider not in _PLUGIN_VERSIONS:
        _PLUGIN_VERSIONS.append(provider)


register_plugin_versions = register_plugin_inventory  # the name the first version of this module used


def plugin_versions() -> dict[str, str]:
    present: dict[str, str] = {}
    for provider in _PLUGIN_VERSIONS:
        present.update(provider())
    return present


@cache
def manifest_schema() -> dict[str, Any]:
    """The skill-manifest/v1 JSON Schema shipped in the repo."""
    return json.loads(SCHEMA_PATH.read_text())


def manifest_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


@dataclass
class Check:
    name: str
    ok: bool
    code: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "code": self.code, "detail": self.detail}


@dataclass
class Verification:
    """The outcome of every check run; `manifest` once the payload parsed."""

    checks: list[Check] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    signed_by: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.checks if not c.ok]

    def passed(self, name: str, detail: str = "") -> None:
        self.checks.append(Check(name, True, detail=detail))

    def failed(self, name: str, code: str, detail: str) -> None:
        self.checks.append(Check(name, False, code, detail))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "codes": self.codes, "checks": [c.as_dict() for c in self.checks]}

    def refusal(self) -> ControlPlaneError:
        first = next(c for c in self.checks if not c.ok)
        return ControlPlaneError(first.code, first.detail, extra={"checks": self.as_dict()["checks"]})


def _version(value: str) -> Version | None:
    try:
        return Version(value)
    except InvalidVersion:
        return None


@dataclass(frozen=True)
class TrustedPublisher:
    """A publisher as a check sees it: its threshold and keys (`PublisherKey` rows, saved or not)."""

    name: str
    threshold: int
    keys: list[Any]


def trust_store_lookup(name: str) -> TrustedPublisher | None:
    """The trust store as it is now (the database)."""
    publisher = Publisher.objects.filter(name=name, builtin=False).prefetch_related("keys").first()
    if publisher is None:
        return None
    return TrustedPublisher(publisher.name, publisher.threshold, list(publisher.keys.all()))


def _signatures(
    result: Verification,
    parsed: envelopes.ParsedEnvelope,
    publisher: TrustedPublisher,
    at: datetime,
    revoked_as_of: datetime | None,
) -> None:
    if not parsed.signatures:
        result.failed("signatures", "SKILL_UNSIGNED", "the envelope carries no signature")
        return
    keys = publisher.keys
    valid: set[str] = set()
    problems: dict[str, list[str]] = {"revoked": [], "expired": [], "invalid": []}
    for keyid, sig in parsed.signatures:
        matched = None
        for key in keys:
            sslib = envelopes.sslib_key(key_id=key.key_id, pem=key.public_key_pem, scheme=key.scheme)
            if envelopes.signature_verifies(sslib, parsed, keyid, sig):
                matched = key
                break
        if matched is None:
            problems["invalid"].append(keyid or "(no keyid)")
            continue
        state = matched.state_at(at, revoked_as_of=revoked_as_of)
        if state == "valid":
            valid.add(matched.key_id)
        else:
            problems[state].append(matched.key_id)
    result.signed_by = sorted(valid)
    if len(valid) >= publisher.threshold:
        result.passed("signatures", f"{len(valid)} of {publisher.threshold} required signatures verified")
        return
    if problems["revoked"]:
        result.failed("signatures", "SKILL_KEY_REVOKED", f"signed by revoked key {problems['revoked'][0]}")
    elif problems["expired"]:
        result.failed(
            "signatures", "SKILL_KEY_EXPIRED", f"key {problems['expired'][0]} is outside its validity window"
        )
    elif problems["invalid"] and not valid:
        result.failed(
            "signatures",
            "SKILL_SIGNATURE_INVALID",
            f"no key of {publisher.name} verifies the signature of {problems['invalid'][0]}",
        )
    else:
        result.failed(
            "signatures",
            "SKILL_SIGNATURE_THRESHOLD",
            f"{len(valid)} valid signature(s), publisher {publisher.name} requires {publisher.threshold}",
        )


def compatibility_check(result: Verification, manifest: dict[str, Any]) -> None:
    """The manifest's `requires` against the runtime contract version and the plugins present."""
    requires = manifest.get("requires", {})
    missing: list[str] = []
    try:
        if Version(RUNTIME_CONTRACT_VERSION) not in SpecifierSet(requires.get("runtime", "")):
            missing.append(
                f"runtime contract {requires['runtime']} (this runtime is {RUNTIME_CONTRACT_VERSION})"
            )
        present = plugin_versions()
        for plugin, spec in sorted(requires.get("plugins", {}).items()):
            if plugin not in present or Version(present[plugin]) not in SpecifierSet(spec):
                missing.append(f"plugin {plugin} {spec} (present: {present.get(plugin, 'none')})")
        for action in manifest["actions"]:
            executor = action["executor"]
            if (
                isinstance(executor, dict)
                and executor["kind"] == "plugin"
                and executor.get("plugin") not in present
            ):
                missing.append(f"plugin {executor.get('plugin')} providing executor {executor['name']}")
    except (InvalidSpecifier, InvalidVersion) as exc:
        missing.append(f"unreadable version range ({exc})")
    if missing:
        result.failed("compatibility", "SKILL_INCOMPATIBLE", "missing: " + "; ".join(missing))
    else:
        result.passed("compatibility", f"runtime contract {RUNTIME_CONTRACT_VERSION}")


def _rollback_check(result: Verification, manifest: dict[str, Any], seen_versions: list[str] | None) -> None:
    version = _version(manifest["version"])
    if seen_versions is None:
        seen_versions = list(Skill.objects.filter(name=manifest["name"]).values_list("version", flat=True))
    seen = [(_version(v), v) for v in seen_versions]
    newest = max((pair for pair in seen if pair[0] is not None), default=None)
    if newest is not None and (version is None or version <= newest[0]):
        result.failed(
            "anti-rollback",
            "SKILL_ROLLBACK",
            f"{manifest['name']}@{manifest['version']} is not above {newest[1]}, installed before",
        )
    else:
        result.passed("anti-rollback")


def _conflicts_check(result: Verification, manifest: dict[str, Any]) -> None:
    conflicts = []
    for action in manifest["actions"]:
        others = ActionContract.objects.filter(name=action["name"]).exclude(skill__name=manifest["name"])
        if others.filter(skill__status=SkillStatus.INSTALLED).exists():
            conflicts.append(f"{action['name']} is provided by another skill")
        same = ActionContract.objects.filter(name=action["name"], version=action["version"]).first()
        contract = {
            "name": action["name"],
            "version": action["version"],
            "risk_tier": action["risk_tier"],
            "executor": executor_name(action),
            "input_schema": action["input_schema"],
            "output_schema": action["output_schema"],
            "blast_radius": action["blast_radius"],
        }
        if same is not None and same.as_contract() != contract:
            conflicts.append(f"{action['name']}@{action['version']} was published with another contract")
    if conflicts:
        result.failed("actions", "SKILL_ACTION_CONFLICT", "; ".join(conflicts))
    else:
        result.passed("actions")


def bundle_digests(files: dict[str, bytes]) -> dict[str, str]:
    """path -> SHA-256 (hex) of each file of a code bundle, as `artifacts[]` names them."""
    return {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}


def _digests_check(result: Verification, manifest: dict[str, Any], bundle: dict[str, str] | None) -> None:
    """Each file the manifest's `artifacts[]` names must be in the bundle with that SHA-256 (fail closed: a
    manifest declaring files with no bundle given is refused)."""
    declared = {a["path"]: a["sha256"] for a in manifest.get("artifacts", [])}
    if not declared:
        result.passed("artifact digests", "no code bundle declared")
        return
    bundle = bundle or {}
    wrong = [path for path, digest in sorted(declared.items()) if bundle.get(path) != digest]
    if wrong:
        missing = [p for p in wrong if p not in bundle]
        detail = "; ".join(
            f"{p}: {'not in the bundle' if p in missing else 'SHA-256 ' + bundle[p] + ' != ' + declared[p]}"
            for p in wrong
        )
        result.failed("artifact digests", "SKILL_DIGEST_MISMATCH", detail)
    else:
        result.passed("artifact digests", f"{len(declared)} file(s) match")


def envelope_check(
    *,
    envelope: Any,
    at: datetime,
    installing: bool = True,
    revoked_as_of: datetime | None = None,
    bundle: dict[str, str] | None = None,
    trust: Any = None,
    seen_versions: list[str] | None = None,
) -> Verification:
    """Run every check on a DSSE envelope as of `at`; read-only.

    `installing=False` (re-verifying an installed skill) skips the anti-rollback, conflict and digest
    checks, which compare with what is installed and with the bundle given at install; `revoked_as_of`
    judges key revocation at another instant (now). `bundle` is path -> SHA-256 of the code bundle's files
    (`bundle_digests`). Replay passes `trust` (name -> `TrustedPublisher` as of an event, rebuilt from the
    ledger) and `seen_versions` (the versions installed before it); the conflict check then is skipped
    (it reads the rows as they are now)."""
    result = Verification()
    try:
        parsed = envelopes.envelope_parse(envelope)
    except ControlPlaneError as exc:
        result.failed("envelope", exc.code, exc.detail)
        return result
    if parsed.payload_type != envelopes.PAYLOAD_TYPE:
        result.failed("payload type", "SKILL_PAYLOAD_TYPE", f"payloadType {parsed.payload_type!r}")
        return result
    result.passed("payload type")
    try:
        manifest = json.loads(parsed.payload)
    except (ValueError, UnicodeDecodeError):
        result.failed("manifest schema", "SKILL_MANIFEST_INVALID", "the payload is not JSON")
        return result
    errors = sorted(Draft202012Validator(manifest_schema()).iter_errors(manifest), key=str)
    if errors:
        path = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        result.failed("manifest schema", "SKILL_MANIFEST_INVALID", f"{path}: {errors[0].message}")
        return result
    result.passed("manifest schema")
    result.manifest = manifest
    publisher = (trust or trust_store_lookup)(manifest["publisher"])
    if publisher is None:
        result.failed(
            "publisher", "SKILL_PUBLISHER_UNKNOWN", f"publisher {manifest['publisher']!r} is not trusted"
        )
        return result
    result.passed("publisher", publisher.name)
    _signatures(result, parsed, publisher, at, revoked_as_of)
    expires = parse_datetime(manifest["expires_at"]) if manifest.get("expires_at") else None
    if expires is not None and expires <= at:
        result.failed("expiry", "SKILL_EXPIRED", f"the manifest expired at {manifest['expires_at']}")
    else:
        result.passed("expiry")
    if installing:
        _rollback_check(result, manifest, seen_versions)
    compatibility_check(result, manifest)
    if installing:
        _digests_check(result, manifest, bundle)
    if installing and trust is None:
        _conflicts_check(result, manifest)
    return result


def installed_check(*, skill: Skill, now: datetime) -> Verification:
    """Re-verify an installed skill: a built-in one against the code, a signed one from its envelope.

    Trust as of the time of the action: key validity windows and the manifest's expiry are judged at the
    install; revocation is judged at `now` (a revoked key stops what it signed, installed or not)."""
    if skill.trusted:
        result = Verification(manifest=skill.manifest)
        if skill.name == CORE_SKILL["name"] and skill.manifest_hash == manifest_hash(
            CORE_SKILL
        ) == manifest_hash(skill.manifest):
            result.passed("built-in", "the manifest shipped in the code (skills.core)")
        else:
            result.failed(
                "built-in", "SKILL_SIGNATURE_INVALID", "the stored manifest is not the one in the code"
            )
        compatibility_check(result, skill.manifest)
        return result
    result = envelope_check(
        envelope=skill.envelope, at=skill.installed_at, installing=False, revoked_as_of=now
    )
    if result.manifest is not None and manifest_hash(result.manifest) != skill.manifest_hash:
        result.failed("manifest hash", "SKILL_SIGNATURE_INVALID", "the stored manifest is not the envelope's")
    return result
