"""Replay of install decisions: every `skill.installed` and `skill.rejected` taken again from the recorded
envelope against the trust store as the ledger had it at that event's seq.

The trust store is rebuilt from its own events (`skill.publisher.added` with each key's PEM and window,
`…rotated`, `…key_revoked`), so the replay needs no table but the ledger: "who was trusted at seq N" is
answered from the chain, and the decision is re-run as of the event's time (signatures, threshold, key
windows and revocation, expiry, anti-rollback against the versions the ledger installed before it,
compatibility, digests against the recorded bundle). A decision people took (an install approval rejected,
expired or cancelled) is not re-run. The projection is checked too: each installed version has its `Skill`
row with the recorded manifest hash.

`manage.py replay --skill NAME | --skills`, registered from `SkillsConfig.ready()`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.utils.dateparse import parse_datetime

from controlplane.kernel.replay import Replayer, ReplayReport
from controlplane.ledger.models import LedgerEvent
from skills.models import PublisherKey, Skill
from skills.verification import TrustedPublisher, envelope_check

# Not re-taken by replay: it compares with the rows as they are now (the conflict check).
UNREPLAYED_CODES = {"SKILL_ACTION_CONFLICT"}


class _TrustStore:
    """The publisher trust store as of the events folded so far."""

    def __init__(self) -> None:
        self.publishers: dict[str, dict[str, Any]] = {}

    def _key(self, data: dict[str, Any]) -> PublisherKey:
        return PublisherKey(
            key_id=data["key_id"],
            public_key_pem=data["public_key"],
            scheme=data["scheme"],
            valid_from=parse_datetime(data["valid_from"]),
            valid_until=parse_datetime(data["valid_until"]) if data.get("valid_until") else None,
        )

    def fold(self, kind: str, data: dict[str, Any], at) -> None:
        if kind == "publisher.added":
            keys = {k["key_id"]: self._key(k) for k in data["keys"]}
            self.publishers[data["publisher"]] = {"threshold": data["threshold"], "keys": keys}
        elif kind == "publisher.rotated" and data["publisher"] in self.publishers:
            publisher = self.publishers[data["publisher"]]
            for key in publisher["keys"].values():
                if key.state_at(at) == "valid":
                    key.valid_until = at
            publisher["keys"].update({k["key_id"]: self._key(k) for k in data["keys"]})
            publisher["threshold"] = data["threshold"]
        elif kind == "publisher.key_revoked":
            for publisher in self.publishers.values():
                if data["key_id"] in publisher["keys"]:
                    publisher["keys"][data["key_id"]].revoked_at = at

    def lookup(self, name: str) -> TrustedPublisher | None:
        publisher = self.publishers.get(name)
        if publisher is None:
            return None
        return TrustedPublisher(name, publisher["threshold"], list(publisher["keys"].values()))


def _recorded_envelope(data: dict[str, Any]) -> Any:
    """The envelope the decision was taken on: on the event; for an install recorded before events carried
    it, the installed row's, when its hash is the recorded one."""
    if data.get("envelope") is not None:
        return data["envelope"]
    row = Skill.objects.filter(
        name=data.get("skill", ""), envelope_hash=data.get("envelope_sha256", "")
    ).first()
    return row.envelope if row is not None and data.get("envelope_sha256") else None


def replay_installs(*, skill: str | None = None) -> ReplayReport:
    """Re-run every install decision (or those of one skill) and check the installed rows."""
    report = ReplayReport(domain="skills")
    trust = _TrustStore()
    installed: dict[str, list[str]] = defaultdict(list)
    events = LedgerEvent.objects.filter(type__startswith="controlplane.skill.").order_by("seq")
    for event in events.iterator():
        kind = event.type.removeprefix("controlplane.skill.")
        data = event.data
        if kind.startswith("publisher."):
            trust.fold(kind, data, event.time)
            continue
        if kind not in ("installed", "rejected"):
            continue
        name = data.get("skill", "")
        recorded = [] if kind == "installed" else [c for c in event.reason_codes if c not in UNREPLAYED_CODES]
        envelope = _recorded_envelope(data)
        people_decided = any(c.startswith("APPROVAL_") for c in event.reason_codes)
        if (skill is None or name == skill) and not people_decided and envelope is not None:
            result = envelope_check(
                envelope=envelope,
                at=event.time,
                bundle=data.get("bundle") or None,
                trust=trust.lookup,
                seen_versions=list(installed[name]),
            )
            report.checked += 1
            report.differ(
                f"skill/{name or 'unknown'}", f"decision@{event.seq}", recorded, result.codes, event.seq
            )
        if kind == "installed":
            installed[name].append(data["version"])
            if skill is None or name == skill:
                row = Skill.objects.filter(name=name, version=data["version"]).first()
                report.differ(
                    f"skill/{name}",
                    f"manifest_sha256@{data['version']}",
                    row.manifest_hash if row else None,
                    data["manifest_sha256"],
                    event.seq,
                )
    return report


def _replay_verify(subject_id: str | None) -> ReplayReport:
    return replay_installs(skill=subject_id)


# `manage.py replay --skill NAME | --skills`, registered from SkillsConfig.ready().
SKILLS_REPLAYER = Replayer(name="skills", verify=_replay_verify, subject="skill", every="skills")
