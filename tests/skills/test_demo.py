"""The demo installs one third-party skill signed by the demo publisher and shows one refused; twice is
once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from controlplane.ledger.models import LedgerEvent
from skills.models import Skill

pytestmark = pytest.mark.django_db


def test_the_demo_installs_one_skill_and_refuses_one():
    call_command("demo", stdout=StringIO())
    skill = Skill.objects.get(name="acme-ops")
    assert (skill.publisher, skill.status, len(skill.signed_by)) == ("acme-demo", "installed", 1)
    refused = LedgerEvent.objects.get(type="controlplane.skill.rejected")
    assert refused.reason_codes[0] == "SKILL_SIGNATURE_INVALID" and refused.data["version"] == "1.0.1"
    events = LedgerEvent.objects.filter(type__startswith="controlplane.skill.").count()
    call_command("demo", stdout=StringIO())
    assert LedgerEvent.objects.filter(type__startswith="controlplane.skill.").count() == events
    assert not Skill.objects.filter(name="acme-ops", version="1.0.1").exists()
