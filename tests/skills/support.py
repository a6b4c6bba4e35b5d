"""A test publisher: keys, a manifest and signing, through the same code `manage.py skills sign` uses."""

from __future__ import annotations

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
