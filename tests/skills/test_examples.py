"""The example shipped under docs/examples/ (manifest, envelope, the demo publisher's public key) verifies,
and its envelope carries exactly the example manifest. The demo key's private half was never kept."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from django.utils import timezone

from skills import services
from skills.verification import envelope_check

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_the_shipped_example_verifies_and_installs():
    envelope = json.loads((EXAMPLES / "acme-ops.dsse.json").read_text())
    manifest = json.loads((EXAMPLES / "acme-ops.manifest.json").read_text())
    assert json.loads(base64.b64decode(envelope["payload"])) == manifest
    services.publisher_add(
        name="acme-demo",
        public_keys=[(EXAMPLES / "acme-demo.pub").read_text()],
        threshold=1,
        actor="test",
        reason="the docs example",
        at=timezone.now(),
    )
    assert envelope_check(envelope=envelope, at=timezone.now()).as_dict()["codes"] == []
    skill, _ = services.skill_install(envelope=envelope, actor="test", reason="example")
    assert skill.signed_by == ["c99241a66484a42ca52f5a1ee81a882e0062ad0d7908eee464f2f9776689f013"]
