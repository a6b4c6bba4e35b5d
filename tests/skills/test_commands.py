"""`manage.py skills`: keygen, sign, verify, install (with the review), list, disable, publishers."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from controlplane.ledger.models import LedgerEvent
from skills.models import Skill, SkillStatus
from tests.identity.factories import token_for
from tests.skills.support import MANIFEST, approve, platform_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(monkeypatch):
    """The person the acting commands authenticate (CONTROLPLANE_TOKEN) and the approvers."""
    operator, approvers = platform_people()
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(operator))
    return operator, approvers


def run(*args: str) -> str:
    out = StringIO()
    call_command("skills", *args, stdout=out)
    return out.getvalue()


def test_a_publishers_walkthrough(tmp_path: Path, people):
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
    asked = run("install", str(envelope), "--reason", "ops needs it")
    assert "install of acme-ops@1.0.0 pending: approval " in asked
    assert "review: acme-ops (new) -> 1.0.0" in asked and "added\tacme.restart" in asked
    assert not Skill.objects.filter(name="acme-ops").exists()
    approval = asked.split("approval ")[1].split()[0]
    assert LedgerEvent.objects.get(type="controlplane.skill.install_requested").actor == people[0].ref
    approve(approval, people[1])
    assert LedgerEvent.objects.get(type="controlplane.skill.installed").actor == f"approval/{approval}"
    assert "acme-ops\t1.0.0\tacme\tinstalled\tsigned:1" in run("list")
    assert "2 verified" in run("verify", "--all")
    assert "disabled acme-ops@1.0.0" in run("disable", "acme-ops", "--reason", "incident")
    assert Skill.objects.get(name="acme-ops").status == SkillStatus.DISABLED
    with pytest.raises(CommandError, match="SKILL_ALREADY_DISABLED"):
        run("disable", "acme-ops", "--reason", "again")
    assert "enabled acme-ops@1.0.0" in run("enable", "acme-ops", "--reason", "over")
    assert "quarantined: acme-ops@1.0.0" in run("publishers", "revoke-key", key_id, "--reason", "leaked")
    assert key_id in run("publishers", "list")


def test_acting_commands_need_a_token(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"^AUTH_REQUIRED"):
        run("disable", "core", "--reason", "r")
    monkeypatch.setenv("CONTROLPLANE_TOKEN", "not-a-token")
    with pytest.raises(CommandError, match=r"^AUTH_INVALID_TOKEN"):
        run("enable", "core", "--reason", "r")
    assert Skill.objects.get(name="core").status == SkillStatus.INSTALLED
    assert not LedgerEvent.objects.filter(type__startswith="controlplane.skill.").exists()


def test_install_refusal_is_the_code(tmp_path: Path, people):
    envelope = tmp_path / "e.json"
    envelope.write_text(json.dumps({"payload": "e30=", "payloadType": "text/plain", "signatures": []}))
    with pytest.raises(CommandError, match=r"^SKILL_PAYLOAD_TYPE"):
        run("install", str(envelope), "--reason", "r")
    assert not Skill.objects.exclude(name="core").exists()


def test_rotation_from_the_command_line(tmp_path: Path, people):
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    run("keygen", "-o", str(old))
    new_id = run("keygen", "-o", str(new), "--scheme", "ecdsa").split("\t")[0]
    run("publishers", "add", "acme", "--key", f"{old}.pub", "--reason", "r")
    statement = tmp_path / "statement.json"
    statement.write_text(
        json.dumps({"publisher": "acme", "threshold": 1, "keys": [Path(f"{new}.pub").read_text()]})
    )
    signed = tmp_path / "statement.dsse.json"
    payload_type = "application/vnd.controlplane.publisher-keys.v1+json"
    run("sign", str(statement), "--key", str(new), "--payload-type", payload_type, "-o", str(signed))
    with pytest.raises(CommandError, match="PUBLISHER_ROTATION_INVALID"):
        run("publishers", "rotate", "acme", str(signed), "--reason", "signed by the new key only")
    run("sign", str(statement), "--key", str(old), "--payload-type", payload_type, "-o", str(signed))
    assert "rotated acme" in run("publishers", "rotate", "acme", str(signed), "--reason", "yearly")
    assert (
        LedgerEvent.objects.filter(type="controlplane.skill.publisher.rotated")
        .get()
        .data["keys"][0]["key_id"]
        == new_id
    )


def test_an_install_asked_on_the_command_line_is_approved_on_the_command_line(
    tmp_path: Path, people, monkeypatch
):
    from tests.skills.support import SigningPublisher

    publisher = SigningPublisher()
    publisher.trust()
    envelope = tmp_path / "e.json"
    envelope.write_text(json.dumps(publisher.sign()))
    asked = run("install", str(envelope), "--reason", "ops")
    approval = asked.split("approval ")[1].split()[0]
    from approvals.models import ApprovalRequest

    content_hash = ApprovalRequest.objects.get(pk=approval).content_hash
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(people[1][0]))
    out = StringIO()
    call_command(
        "approvals",
        "approve",
        approval,
        "--reason",
        "diff reviewed",
        "--content-hash",
        content_hash,
        stdout=out,
    )
    assert Skill.objects.get(name="acme-ops").status == SkillStatus.INSTALLED
    assert LedgerEvent.objects.get(type="controlplane.skill.installed").actor == f"approval/{approval}"
