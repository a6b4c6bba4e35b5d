"""Replay re-takes every install decision from the recorded envelope against the trust store rebuilt from
the ledger as of that event; a decision the chain does not support is a difference."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from controlplane.ledger.models import LedgerEvent
from skills import services
from skills.models import Skill
from skills.replay import replay_installs
from tests.skills.support import SigningPublisher, approve, platform_people, write_every_skill_event

pytestmark = pytest.mark.django_db


def test_every_install_decision_replays_with_no_difference():
    write_every_skill_event()
    report = replay_installs()
    assert report.differences == []
    decisions = LedgerEvent.objects.filter(
        type__in=["controlplane.skill.installed", "controlplane.skill.rejected"]
    )
    assert report.checked == decisions.count() >= 4


def test_a_decision_the_trust_store_did_not_support_is_a_difference():
    publisher = SigningPublisher()
    publisher.trust()
    skill, _ = services.skill_install(envelope=publisher.sign(), actor="test", reason="r")
    # The row says the publisher signed, but the ledger's trust store never held this key: forge an install
    # of an envelope signed by a stranger, as an edit of the projection and a crafted event would.
    stranger = SigningPublisher().sign()
    Skill.objects.filter(pk=skill.pk).update(envelope=stranger)
    event = LedgerEvent.objects.get(type="controlplane.skill.installed")
    data = {**event.data, "envelope": stranger}
    from controlplane.ledger.services import ledger_append

    ledger_append(
        type="controlplane.skill.installed", subject="skill/acme-ops", data={**data, "version": "1.0.1"}
    )
    report = replay_installs(skill="acme-ops")
    forged = [d for d in report.differences if d.field == f"decision@{event.seq + 1}"]
    assert [(d.recorded, d.rebuilt[0]) for d in forged] == [([], "SKILL_SIGNATURE_INVALID")]


def test_a_revocation_between_request_and_approval_replays_as_refused():
    operator, approvers = platform_people()
    publisher = SigningPublisher()
    publisher.trust()
    request = services.skill_install_request(envelope=publisher.sign(), actor=operator, reason="r")
    services.publisher_key_revoke(key_id=publisher.key_ids[0], actor="test", reason="leaked")
    approve(request.pk, approvers)
    assert replay_installs().differences == []


def test_manage_replay_offers_the_skills_replayer():
    write_every_skill_event()
    out = StringIO()
    call_command("replay", "--skills", "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert "skills" in json.dumps(body)
