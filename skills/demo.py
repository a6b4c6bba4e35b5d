"""The demo's skills: the docs example's third-party skill installed from its signed envelope, and one
refused (its payload tampered after signing), both through the services and ledgered. Idempotent.

Called by `manage.py demo` (an installation command, so the installation is the actor: no approval request;
a person's install goes through `skill_install_request`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from skills import envelopes, services
from skills.models import Publisher, Skill

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
PUBLISHER = "acme-demo"


def _tampered(envelope: dict[str, Any]) -> dict[str, Any]:
    """The example envelope with its payload changed after signing (a tier lowered): refused."""
    manifest = json.loads(base64.b64decode(envelope["payload"]))
    manifest["version"] = "1.0.1"
    manifest["actions"][0]["risk_tier"] = "low"
    return {**envelope, "payload": base64.b64encode(json.dumps(manifest).encode()).decode()}


def skills_demo(*, actor: str) -> dict[str, str]:
    """Trust the demo publisher, install its skill, show a tampered copy refused; what happened to each."""
    envelope = json.loads((EXAMPLES / "acme-ops.dsse.json").read_text())
    if not Publisher.objects.filter(name=PUBLISHER).exists():
        services.publisher_add(
            name=PUBLISHER,
            public_keys=[(EXAMPLES / "acme-demo.pub").read_text()],
            threshold=1,
            actor=actor,
            reason="the demo publisher (docs/examples)",
        )
    outcome = {"installed": "acme-ops@1.0.0 (already)", "refused": "(already)"}
    if not Skill.objects.filter(name="acme-ops").exists():
        skill, _ = services.skill_install(
            envelope=envelope, actor=actor, reason="the demo's third-party skill"
        )
        outcome["installed"] = str(skill)
    tampered = _tampered(envelope)
    already = LedgerEvent.objects.filter(
        type="controlplane.skill.rejected", data__envelope_sha256=envelopes.envelope_hash(tampered)
    ).exists()
    if not already:
        try:
            services.skill_install(envelope=tampered, actor=actor, reason="the demo's tampered copy")
        except ControlPlaneError as refusal:
            outcome["refused"] = refusal.code
    return outcome
