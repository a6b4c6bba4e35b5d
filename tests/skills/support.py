"""A test publisher: keys, a manifest and signing, through the same code `manage.py skills sign` uses."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import timedelta

from django.utils import timezone

from skills import envelopes, services

ACTION = {
    "name": "acme.restart",
    "version": "1.0.0",
    "description": "Restart one service.",
    "risk_tier": "medium",
    "executor": {"kind": "builtin", "name": "noop.echo"},
    "input_schema": {
        "type": "object",
        "required": ["service"],
        "properties": {"service": {"type": "string"}},
        "additionalProperties": False,
    },
    "output_schema": {"type": "object"},
    "capabilities": ["acme.services.restart"],
    "side_effects": ["infrastructure"],
    "blast_radius": {"target_input": "service", "max_targets": 1},
}
MANIFEST = {
    "schema": "skill-manifest/v1",
    "name": "acme-ops",
    "version": "1.0.0",
    "publisher": "acme",
    "description": "ACME's operations actions.",
    "actions": [ACTION],
    "requires": {"runtime": ">=1.0,<2.0"},
    "issued_at": "2026-01-01T00:00:00Z",
}


class SigningPublisher:
    """n key pairs; `trust()` puts the publisher in the trust store with a threshold."""

    def __init__(self, n: int = 1, scheme: str = "ed25519"):
        self.pairs = [envelopes.keypair_generate(scheme=scheme) for _ in range(n)]
        self.signers = [envelopes.signer_load(private) for private, _ in self.pairs]
        self.key_ids = [s.public_key.keyid for s in self.signers]

    def trust(self, *, threshold: int = 1, name: str = "acme", at=None):
        return services.publisher_add(
            name=name,
            public_keys=[public for _, public in self.pairs],
            threshold=threshold,
            actor="test",
            reason="test publisher",
            at=at or timezone.now() - timedelta(days=1),
        )

    def sign(self, manifest: dict | None = None, *, signers: list | None = None, **changes) -> dict:
        body = copy.deepcopy(manifest or MANIFEST)
        body.update(changes)
        payload = json.dumps(body, sort_keys=True).encode()
        return envelopes.envelope_sign(payload=payload, signers=self.signers if signers is None else signers)


def manifest(**changes) -> dict:
    body = copy.deepcopy(MANIFEST)
    body.update(changes)
    return body


def write_every_skill_event() -> None:
    """Every skills event through the services (for the contract drift test): a publisher added, an install,
    a refused install, a rotation, a disable, a revocation that quarantines."""
    from controlplane.kernel.errors import ControlPlaneError

    first, second = SigningPublisher(), SigningPublisher()
    acme = first.trust()
    services.skill_install(envelope=first.sign(), actor="test", reason="r")
    with contextlib.suppress(ControlPlaneError):  # the same version again: refused, SKILL_ROLLBACK
        services.skill_install(envelope=first.sign(), actor="test", reason="again")
    other = SigningPublisher()
    other.trust(name="other")
    services.skill_install(
        envelope=other.sign(
            manifest(name="other-ops", publisher="other", actions=[{**ACTION, "name": "other.restart"}])
        ),
        actor="test",
        reason="r",
    )
    body = json.dumps({"publisher": "acme", "threshold": 1, "keys": [second.pairs[0][1]]}).encode()
    statement = envelopes.envelope_sign(
        payload=body, signers=first.signers, payload_type=envelopes.ROTATION_PAYLOAD_TYPE
    )
    services.publisher_rotate(publisher=acme, statement=statement, actor="test", reason="rotate")
    services.skill_disable(name="acme-ops", actor="test", reason="r")
    services.skill_enable(name="acme-ops", actor="test", reason="r")
    operator, approvers = platform_people("skills-drift")
    request = services.skill_install_request(
        envelope=second.sign(manifest(version="1.1.0")), actor=operator, reason="by a person"
    )
    approve(request.pk, approvers)
    services.publisher_key_revoke(key_id=other.key_ids[0], actor="test", reason="leaked")


def platform_people(tenant_slug: str = "platform"):
    """A person holding platform.skills.manage and two approvers of the same tenant; the dev profile active
    (it gives an install its quorum)."""
    from controlplane.policy import services as policy
    from tests.identity.factories import PrincipalFactory, TenantFactory

    policy.profile_bootstrap(environment="dev")
    tenant = TenantFactory(slug=tenant_slug)
    operator = PrincipalFactory(
        tenant=tenant, name="pat", human=True, capabilities=["skills.read", "platform.skills.manage"]
    )
    approvers = [
        PrincipalFactory(tenant=tenant, name=name, human=True, capabilities=["approvals.decide"])
        for name in ("alice", "bob")
    ]
    return operator, approvers


def approve(request_id: str, approvers, *, decision: str = "approve"):
    """Decide the install's approval request, by as many approvers as its quorum."""
    from approvals import services as approvals
    from approvals.models import ApprovalRequest

    approval = ApprovalRequest.objects.get(pk=request_id)
    for person in approvers[: approval.quorum if decision == "approve" else 1]:
        approval = approvals.approval_decide(
            approval=ApprovalRequest.objects.get(pk=request_id),
            actor=person,
            decision=decision,
            reason="reviewed the diff",
            content_hash=approval.content_hash,
        )
    return ApprovalRequest.objects.get(pk=request_id)


def unsigned_skill(*, name: str, version: str = "1.0.0"):
    """A skill row for runtime tests that register their own executors, as if installed: its manifest hash
    is the one a ledgered `skill.installed` recorded (dispatch re-checks it, skills.selectors)."""
    from controlplane.ledger.services import ledger_append
    from skills.models import Skill
    from skills.verification import manifest_hash

    body = {"name": name, "version": version, "publisher": "test"}
    skill = Skill.objects.create(
        name=name, version=version, publisher="test", manifest=body, manifest_hash=manifest_hash(body)
    )
    ledger_append(
        type="controlplane.skill.installed",
        subject=f"skill/{name}",
        data={"skill": name, "version": version, "manifest_sha256": skill.manifest_hash},
        actor="test",
    )
    return skill
