"""`manage.py skills`: keygen, sign, verify, install (with the review), list, disable, publishers."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from controlplane.ledger.models import LedgerEvent
from skills.models import Skill, SkillStatus
from tests.skills.support import MANIFEST

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("skills", *args, stdout=out)
    return out.getvalue()


def test_a_publishers_walkthrough(tmp_path: Path):
    key = tmp_path / "acme.key"
    key_id = run("keygen", "-o", str(key)).split("\t")[0]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(MANIFEST))
    envelope = tmp_path / "envelope.json"
    assert key_id in run("sign", str(manifest), "--key", str(key), "-o", str(envelope))
    assert json.loads(envelope.read_text())["payloadType"] == "application/vnd.controlplane.skill.v1+json"
    with pytest.raises(CommandError, match="SKILL_PUBLISHER_UNKNOWN"):
        run("verify", str(envelope))
    assert "trusted acme (1 of 1)" in run("publishers", "add", "acme", "--key", f"{key}.pub", "--reason", "r")
    assert "1 verified" in run("verify", str(envelope))
    installed = run("install", str(envelope), "--reason", "ops needs it")
    assert "installed acme-ops@1.0.0" in installed and "review: acme-ops (new) -> 1.0.0" in installed
    assert "added\tacme.restart" in installed
    event = LedgerEvent.objects.filter(type="controlplane.skill.installed").get()
    assert event.actor.startswith("cli:") and "@" in event.actor
    assert "acme-ops\t1.0.0\tacme\tinstalled\tsigned:1" in run("list")
    assert "2 verified" in run("verify", "--all")
    assert "disabled acme-ops@1.0.0" in run("disable", "acme-ops", "--reason", "incident")
    assert Skill.objects.get(name="acme-ops").status == SkillStatus.DISABLED
    with pytest.raises(CommandError, match="SKILL_ALREADY_DISABLED"):
        run("disable", "acme-ops", "--reason", "again")
    assert "quarantined: none" in run("publishers", "revoke-key", key_id, "--reason", "leaked")
    assert key_id in run("publishers", "list")


def test_install_refusal_is_the_code(tmp_path: Path):
    envelope = tmp_path / "e.json"
    envelope.write_text(json.dumps({"payload": "e30=", "payloadType": "text/plain", "signatures": []}))
    with pytest.raises(CommandError, match=r"^SKILL_PAYLOAD_TYPE"):
        run("install", str(envelope), "--reason", "r")
    assert not Skill.objects.exclude(name="core").exists()
