"""A person's install is a `skills.install` approval request bound to the envelope's hash, with the install
review (the diff against the installed version) as what the approvers see; quorum by the skill's highest
risk tier per the active profile; installed on approval, re-verified then; every refusal ledgered."""

from __future__ import annotations

import pytest

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from skills import services
from skills.models import InstallRequest, Skill
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.skills.support import ACTION, SigningPublisher, approve, manifest, platform_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return platform_people()


@pytest.fixture
def publisher():
    signing = SigningPublisher()
    signing.trust()
    return signing


def _events(prefix="controlplane.skill."):
    events = LedgerEvent.objects.filter(type__startswith=prefix)
    return list(events.exclude(type__startswith="controlplane.skill.publisher.").order_by("seq"))


def test_install_waits_for_its_approval_then_installs(people, publisher):
    operator, approvers = people
    envelope = publisher.sign()
    request = services.skill_install_request(envelope=envelope, actor=operator, reason="ops needs restarts")
    approval = ApprovalRequest.objects.get(pk=request.pk)
    assert (request.status, approval.subject_kind, approval.status) == (
        "pending",
        "skills.install",
        "pending",
    )
    assert approval.content_hash == request.envelope_hash == approval.subject_id
    assert approval.risk_tier == "medium" and approval.quorum == 1  # the dev profile's medium quorum
    assert approval.summary["review"]["changes"][0]["action"] == "acme.restart"
    assert not Skill.objects.filter(name="acme-ops").exists()
    assert [e.type for e in _events()] == ["controlplane.skill.install_requested"]
    approve(request.pk, approvers)
    request.refresh_from_db()
    skill = Skill.objects.get(name="acme-ops")
    assert (request.status, request.skill, skill.status) == ("installed", skill, "installed")
    installed = LedgerEvent.objects.get(type="controlplane.skill.installed")
    assert (
        installed.actor == f"approval/{request.pk}"
        and installed.data["envelope_sha256"] == request.envelope_hash
    )
    assert ApprovalRequest.objects.get(pk=request.pk).consumed_at is not None


def test_nobody_approves_their_own_install(publisher):
    platform_people()
    operator = PrincipalFactory(
        tenant=TenantFactory(slug="platform2"),
        human=True,
        capabilities=["platform.skills.manage", "approvals.decide"],
    )
    request = services.skill_install_request(envelope=publisher.sign(), actor=operator, reason="r")
    approval = ApprovalRequest.objects.get(pk=request.pk)
    with pytest.raises(ControlPlaneError) as refusal:
        approval_decide(
            approval=approval,
            actor=operator,
            decision="approve",
            reason="me",
            content_hash=approval.content_hash,
        )
    assert refusal.value.code == "APPROVAL_SELF_APPROVAL"
    assert not Skill.objects.filter(name="acme-ops").exists()


def test_a_rejected_install_installs_nothing_and_is_ledgered(people, publisher):
    operator, approvers = people
    request = services.skill_install_request(envelope=publisher.sign(), actor=operator, reason="r")
    approve(request.pk, approvers, decision="reject")
    request.refresh_from_db()
    assert (request.status, request.status_codes) == ("rejected", ["APPROVAL_REJECTED"])
    assert not Skill.objects.filter(name="acme-ops").exists()
    rejected = LedgerEvent.objects.get(type="controlplane.skill.rejected")
    assert rejected.reason_codes == ["APPROVAL_REJECTED"] and rejected.data["skill"] == "acme-ops"


def test_a_key_revoked_before_the_approval_refuses_the_install(people, publisher):
    operator, approvers = people
    request = services.skill_install_request(envelope=publisher.sign(), actor=operator, reason="r")
    services.publisher_key_revoke(key_id=publisher.key_ids[0], actor="test", reason="leaked")
    approve(request.pk, approvers)  # the decision commits; the install is refused
    request.refresh_from_db()
    assert (request.status, request.status_codes[0]) == ("refused", "SKILL_KEY_REVOKED")
    assert not Skill.objects.filter(name="acme-ops").exists()
    assert LedgerEvent.objects.get(type="controlplane.skill.rejected").reason_codes[0] == "SKILL_KEY_REVOKED"
    assert ApprovalRequest.objects.get(pk=request.pk).status == "approved"


def test_a_refused_verification_opens_no_request(people, publisher):
    operator, _ = people
    with pytest.raises(ControlPlaneError) as refusal:
        services.skill_install_request(envelope=SigningPublisher().sign(), actor=operator, reason="r")
    assert refusal.value.code == "SKILL_SIGNATURE_INVALID"
    assert not ApprovalRequest.objects.exists() and not InstallRequest.objects.exists()
    assert [(e.type, e.reason_codes) for e in _events()] == [
        ("controlplane.skill.rejected", ["SKILL_SIGNATURE_INVALID"])
    ]


def test_the_quorum_follows_the_highest_tier(people, publisher):
    operator, approvers = people
    critical = {**ACTION, "name": "acme.drop", "risk_tier": "critical"}
    envelope = publisher.sign(manifest(actions=[ACTION, critical]))
    request = services.skill_install_request(envelope=envelope, actor=operator, reason="r")
    approval = ApprovalRequest.objects.get(pk=request.pk)
    assert (approval.risk_tier, approval.quorum) == ("critical", 2)
    approval_decide(
        approval=approval,
        actor=approvers[0],
        decision="approve",
        reason="ok",
        content_hash=approval.content_hash,
    )
    assert not Skill.objects.filter(name="acme-ops").exists()  # one of two
    approve(request.pk, approvers[1:])
    assert Skill.objects.get(name="acme-ops").status == "installed"


def test_the_approvers_see_what_an_upgrade_newly_allows(people, publisher):
    operator, approvers = people
    services.skill_install(envelope=publisher.sign(), actor="test", reason="v1")
    wider = {
        **ACTION,
        "version": "2.0.0",
        "risk_tier": "high",
        "capabilities": ["acme.services.restart", "acme.services.delete"],
        "input_schema": {**ACTION["input_schema"], "additionalProperties": True},
    }
    v2 = publisher.sign(manifest(version="2.0.0", actions=[wider, {**ACTION, "name": "acme.scale"}]))
    request = services.skill_install_request(envelope=v2, actor=operator, reason="upgrade")
    review = ApprovalRequest.objects.get(pk=request.pk).summary["review"]
    assert (review["from_version"], review["to_version"]) == ("1.0.0", "2.0.0")
    changed = next(c for c in review["changes"] if c["action"] == "acme.restart")
    assert changed["risk_tier_raised"] == ["medium", "high"]
    assert changed["capabilities_added"] == ["acme.services.delete"]
    assert changed["input_schema_widened"] == ["accepts any other input"]
    assert [c["change"] for c in review["changes"] if c["action"] == "acme.scale"] == ["added"]
    approve(request.pk, approvers)
    assert Skill.objects.get(name="acme-ops", version="1.0.0").status == "superseded"


def test_install_needs_the_platform_capability(publisher):
    tenant_person = PrincipalFactory(
        tenant=TenantFactory(slug="ops"), human=True, capabilities=["skills.read", "approvals.decide"]
    )
    with pytest.raises(ControlPlaneError) as refusal:
        services.skill_install_request(envelope=publisher.sign(), actor=tenant_person, reason="r")
    assert refusal.value.code == "PLATFORM_SCOPE_REQUIRED"
    assert not ApprovalRequest.objects.exists() and not _events()


def test_a_person_cannot_install_around_the_approval(people, publisher):
    with pytest.raises(ControlPlaneError) as refusal:
        services.skill_install(envelope=publisher.sign(), actor=people[0], reason="r")
    assert refusal.value.code == "SKILL_INSTALL_NEEDS_APPROVAL"
    assert not Skill.objects.filter(name="acme-ops").exists() and not _events()


def test_another_tenants_approver_cannot_decide_an_install(people, publisher):
    operator, _ = people
    request = services.skill_install_request(envelope=publisher.sign(), actor=operator, reason="r")
    outsider = PrincipalFactory(
        tenant=TenantFactory(slug="other"), name="eve", human=True, capabilities=["approvals.decide"]
    )
    approval = ApprovalRequest.objects.get(pk=request.pk)
    with pytest.raises(ControlPlaneError) as refusal:
        approval_decide(
            approval=approval,
            actor=outsider,
            decision="approve",
            reason="x",
            content_hash=approval.content_hash,
        )
    assert refusal.value.code == "NOT_FOUND"
    assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"
    assert not Skill.objects.filter(name="acme-ops").exists()
