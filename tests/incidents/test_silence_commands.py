"""`manage.py silences`: created and expired by the person whose API token is given, as through the API."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from controlplane.ledger.models import LedgerEvent
from incidents.models import Silence
from tests.identity.factories import PrincipalFactory, token_for

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("silences", *args, stdout=out)
    return out.getvalue()


def test_create_list_and_expire_as_the_person(tenant, oncall, oncall_token, monkeypatch):
    monkeypatch.setenv("CONTROLPLANE_TOKEN", oncall_token)
    ends = (timezone.now() + timedelta(hours=1)).isoformat()
    created = run("create", "--service", "search", "--ends-at", ends, "--reason", "deploy window")
    silence = Silence.objects.get()
    assert created.split("\t")[:4] == [silence.pk, "active", "active", "search"]
    assert run("list").split("\t")[0] == silence.pk
    assert run("expire", silence.pk, "--reason", "deploy done").split("\t")[:2] == [silence.pk, "expired"]
    actors = set(
        LedgerEvent.objects.filter(type__startswith="controlplane.silence.").values_list("actor", flat=True)
    )
    assert actors == {oncall.ref}


def test_refused_without_a_token_or_the_capability_and_nothing_written(tenant, monkeypatch):
    reader = PrincipalFactory(tenant=tenant, name="ro", human=True, capabilities=["incidents.read"])
    reader_token = token_for(reader)
    before = LedgerEvent.objects.count()
    ends = (timezone.now() + timedelta(hours=1)).isoformat()
    create = ("create", "--service", "search", "--ends-at", ends, "--reason", "r")
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"^AUTH_REQUIRED: "):
        run(*create)
    monkeypatch.setenv("CONTROLPLANE_TOKEN", reader_token)
    with pytest.raises(CommandError, match=r"^CAPABILITY_MISSING: acme/ro lacks 'silences.manage'"):
        run(*create)
    assert LedgerEvent.objects.count() == before and not Silence.objects.exists()
