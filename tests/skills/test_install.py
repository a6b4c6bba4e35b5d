"""Install refuses every named attack (TUF's list) with its code and installs nothing; run time refuses an
action of a skill that is not installed and verified; 100% of installed skills verify."""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.compiler import PlanRejected, plan_compile
from skills import services
from skills.models import ActionContract, Skill, SkillStatus
from skills.selectors import contract_resolver, skill_list
from skills.verification import installed_check
from tests.skills.support import ACTION, SigningPublisher, manifest

pytestmark = pytest.mark.django_db


def _state():
    return (
        sorted(Skill.objects.values_list("name", "version", "status")),
        ActionContract.objects.count(),
    )


def _refused(envelope, code):
    """Install is refused with `code`; nothing but one skill.rejected event is written."""
    before, seq = _state(), LedgerEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    with pytest.raises(ControlPlaneError) as refusal:
        services.skill_install(envelope=envelope, actor="test", reason="try")
    assert refusal.value.code == code
    assert _state() == before
    written = list(LedgerEvent.objects.filter(seq__gt=seq, type__startswith="controlplane.skill."))
    assert [(e.type, e.reason_codes[0]) for e in written] == [("controlplane.skill.rejected", code)]


def _compile(action="acme.restart"):
    return plan_compile(
        draft={"goal": "g", "steps": [{"key": "a", "action": action, "inputs": {"service": "web"}}]},
        resolve=contract_resolver,
        tenant="acme",
    )


def test_a_signed_skill_installs_and_compiles():
    publisher = SigningPublisher()
    publisher.trust()
    skill, review = services.skill_install(envelope=publisher.sign(), actor="test", reason="new ops skill")
    assert (skill.status, skill.signed_by) == (SkillStatus.INSTALLED, publisher.key_ids)
    assert review["changes"] == [
        {
            "action": "acme.restart",
            "change": "added",
            "risk_tier": "medium",
            "capabilities": ["acme.services.restart"],
            "blast_radius": {"target_input": "service", "max_targets": 1},
        }
    ]
    event = LedgerEvent.objects.filter(type="controlplane.skill.installed").get()
    assert event.data["skill"] == "acme-ops" and event.data["signed_by"] == publisher.key_ids
    assert _compile().steps[0].action_version == "1.0.0"


def test_tampered_payload():
    publisher = SigningPublisher()
    publisher.trust()
    envelope = publisher.sign()
    body = json.loads(base64.b64decode(envelope["payload"]))
    body["actions"][0]["risk_tier"] = "low"
    envelope["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    _refused(envelope, "SKILL_SIGNATURE_INVALID")


def test_signature_by_an_unknown_key():
    SigningPublisher().trust()
    _refused(SigningPublisher().sign(), "SKILL_SIGNATURE_INVALID")


def test_unsigned():
    publisher = SigningPublisher()
    publisher.trust()
    _refused(publisher.sign(signers=[]), "SKILL_UNSIGNED")


def test_one_signature_where_two_are_required():
    publisher = SigningPublisher(n=2)
    publisher.trust(threshold=2)
    _refused(publisher.sign(signers=publisher.signers[:1]), "SKILL_SIGNATURE_THRESHOLD")
    skill, _ = services.skill_install(envelope=publisher.sign(), actor="test", reason="both signed")
    assert sorted(skill.signed_by) == sorted(publisher.key_ids)


def test_unknown_publisher():
    _refused(SigningPublisher().sign(), "SKILL_PUBLISHER_UNKNOWN")


def test_rollback_to_an_older_version_and_replaying_the_same():
    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(version="1.2.0"), actor="test", reason="r")
    _refused(publisher.sign(version="1.1.0"), "SKILL_ROLLBACK")
    _refused(publisher.sign(version="1.2.0"), "SKILL_ROLLBACK")


def test_expired_manifest():
    publisher = SigningPublisher()
    publisher.trust()
    _refused(publisher.sign(expires_at="2026-01-02T00:00:00Z"), "SKILL_EXPIRED")


def test_key_outside_its_validity_window():
    publisher = SigningPublisher()
    publisher.trust(at=timezone.now() + timedelta(days=1))  # valid only from tomorrow
    _refused(publisher.sign(), "SKILL_KEY_EXPIRED")


def test_wrong_payload_type():
    publisher = SigningPublisher()
    publisher.trust()
    envelope = publisher.sign()
    envelope["payloadType"] = "application/vnd.in-toto+json"
    _refused(envelope, "SKILL_PAYLOAD_TYPE")


def test_incompatible_contract_range():
    publisher = SigningPublisher()
    publisher.trust()
    _refused(publisher.sign(requires={"runtime": ">=2.0"}), "SKILL_INCOMPATIBLE")
    _refused(publisher.sign(requires={"runtime": ">=1.0", "plugins": {"k8s": ">=1"}}), "SKILL_INCOMPATIBLE")


def test_manifest_failing_its_schema():
    publisher = SigningPublisher()
    publisher.trust()
    action = {k: v for k, v in ACTION.items() if k != "blast_radius"}
    _refused(publisher.sign(actions=[action]), "SKILL_MANIFEST_INVALID")


def test_an_action_another_skill_provides():
    publisher = SigningPublisher()
    publisher.trust()
    echo = copy.deepcopy(ACTION) | {"name": "noop.echo"}
    _refused(publisher.sign(actions=[echo]), "SKILL_ACTION_CONFLICT")


def test_revoking_a_key_quarantines_what_it_signed_and_stops_compiling():
    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(), actor="test", reason="r")
    quarantined = services.publisher_key_revoke(key_id=publisher.key_ids[0], actor="test", reason="leaked")
    assert quarantined == ["acme-ops@1.0.0"]
    skill = Skill.objects.get(name="acme-ops")
    assert (skill.status, skill.status_codes) == (SkillStatus.QUARANTINED, ["SKILL_KEY_REVOKED"])
    with pytest.raises(PlanRejected) as refusal:
        _compile()
    assert refusal.value.code == "SKILL_KEY_REVOKED"
    _refused(publisher.sign(version="2.0.0"), "SKILL_KEY_REVOKED")


def test_a_stale_trust_revision_is_re_verified_at_run_time():
    """A revocation written around the service (an admin edit) still stops the action at the next lookup."""
    from skills.models import PublisherKey, TrustRevision

    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(), actor="test", reason="r")
    PublisherKey.objects.update(revoked_at=timezone.now())
    TrustRevision.objects.update(revision=999)
    with pytest.raises(PlanRejected) as refusal:
        _compile()
    assert refusal.value.code == "SKILL_NOT_ACTIVE"


def test_disabling_stops_compilation_with_skill_not_active():
    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(), actor="test", reason="r")
    services.skill_disable(name="acme-ops", actor="test", reason="incident")
    with pytest.raises(PlanRejected) as refusal:
        _compile()
    assert refusal.value.code == "SKILL_NOT_ACTIVE"
    with pytest.raises(ControlPlaneError) as again:
        services.skill_disable(name="acme-ops", actor="test", reason="twice")
    assert again.value.code == "SKILL_ALREADY_DISABLED"


def test_upgrade_review_shows_what_it_newly_allows():
    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(), actor="test", reason="r")
    wider = copy.deepcopy(ACTION) | {"version": "1.1.0", "risk_tier": "high"}
    wider["capabilities"] = ["acme.services.restart", "acme.hosts.reboot"]
    wider["blast_radius"] = {"target_input": "service", "max_targets": 5}
    wider["input_schema"] = {"type": "object", "properties": {"service": {"type": "string"}, "all": {}}}
    _, review = services.skill_install(
        envelope=publisher.sign(version="1.1.0", actions=[wider]), actor="test", reason="upgrade"
    )
    assert review["from_version"] == "1.0.0" and review["to_version"] == "1.1.0"
    assert review["changes"] == [
        {
            "action": "acme.restart",
            "change": "changed",
            "risk_tier_raised": ["medium", "high"],
            "capabilities_added": ["acme.hosts.reboot"],
            "blast_radius_grown": [1, 5],
            "input_schema_widened": [
                "new inputs: all",
                "no longer required: service",
                "accepts any other input",
            ],
        }
    ]
    assert Skill.objects.get(name="acme-ops", version="1.0.0").status == SkillStatus.SUPERSEDED
    assert _compile().steps[0].action_version == "1.1.0"


def test_ecdsa_p256_and_a_signature_without_keyid_verify():
    publisher = SigningPublisher(scheme="ecdsa")
    publisher.trust()
    envelope = publisher.sign()
    del envelope["signatures"][0]["keyid"]
    envelope["extra"] = "ignored"  # unknown fields are ignored, as DSSE says
    skill, _ = services.skill_install(envelope=envelope, actor="test", reason="r")
    assert skill.signed_by == publisher.key_ids


def test_dsse_pae_matches_the_specification_vector():
    """The DSSE specification's published PAE example (payloadType http://example.com/HelloWorld)."""
    from skills.envelopes import ParsedEnvelope

    parsed = ParsedEnvelope(b"hello world", "http://example.com/HelloWorld", ())
    assert parsed.pae == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_every_installed_skill_passes_signature_and_compatibility_verification():
    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(), actor="test", reason="r")
    installed = list(skill_list().filter(status=SkillStatus.INSTALLED))
    assert {s.name for s in installed} == {"core", "acme-ops"}
    now = timezone.now()
    assert all(installed_check(skill=s, now=now).ok for s in installed)


def test_rotation_needs_a_threshold_of_the_current_keys():
    from skills import envelopes

    old = SigningPublisher(n=2)
    acme = old.trust(threshold=2)
    new = SigningPublisher()
    body = json.dumps({"publisher": "acme", "threshold": 1, "keys": [new.pairs[0][1]]}).encode()
    half = envelopes.envelope_sign(
        payload=body, signers=old.signers[:1], payload_type=envelopes.ROTATION_PAYLOAD_TYPE
    )
    with pytest.raises(ControlPlaneError) as refusal:
        services.publisher_rotate(publisher=acme, statement=half, actor="test", reason="rotate")
    assert refusal.value.code == "PUBLISHER_ROTATION_INVALID"
    as_skill = envelopes.envelope_sign(payload=body, signers=old.signers)  # a skill's payload type
    with pytest.raises(ControlPlaneError) as wrong_type:
        services.publisher_rotate(publisher=acme, statement=as_skill, actor="test", reason="rotate")
    assert wrong_type.value.code == "PUBLISHER_ROTATION_INVALID"
    full = envelopes.envelope_sign(
        payload=body, signers=old.signers, payload_type=envelopes.ROTATION_PAYLOAD_TYPE
    )
    services.publisher_rotate(publisher=acme, statement=full, actor="test", reason="rotate")
    skill, _ = services.skill_install(envelope=new.sign(manifest()), actor="test", reason="after rotation")
    assert skill.signed_by == new.key_ids


def test_every_trust_change_leaves_installed_skills_verified_at_the_new_revision():
    """So run-time lookups stay one small read: no full re-verification after an unrelated change."""
    from skills.selectors import trust_revision

    publisher = SigningPublisher()
    publisher.trust()
    services.skill_install(envelope=publisher.sign(), actor="test", reason="r")
    SigningPublisher().trust(name="other")
    assert Skill.objects.get(name="acme-ops").verified_revision == trust_revision()
