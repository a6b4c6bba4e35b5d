"""Project-level commands: demo, quickstart_admin, reasons."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError

from approvals.models import ApprovalRequest
from controlplane.identity.capabilities import CAPABILITIES
from controlplane.identity.models import Principal
from controlplane.kernel.reasons import CATALOGUE
from controlplane.ledger.models import Checkpoint, LedgerEvent
from controlplane.runtime.models import Execution
from incidents.models import Incident

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_demo_is_idempotent():
    assert "chain verified" in run("demo")
    events = LedgerEvent.objects.count()
    checkpoints = Checkpoint.objects.count()
    assert "chain verified" in run("demo")
    # The second run adds only the record of a checkpoint at the new head, nothing else.
    new = list(LedgerEvent.objects.filter(seq__gt=events).values_list("type", flat=True))
    assert new == ["controlplane.ledger.checkpoint.created"]
    assert Checkpoint.objects.count() == checkpoints + 1
    assert LedgerEvent.objects.filter(fidelity="demo").count() == 5
    assert set(Principal.objects.values_list("name", flat=True)) >= {"oncall-alice", "deploy-agent"}


def test_demo_shows_the_whole_flow_an_incident_a_pending_approval_and_executions():
    run("demo")
    incident = Incident.objects.get()
    assert (incident.status, incident.service, incident.severity) == ("open", "payments", "high")
    assert list(ApprovalRequest.objects.values_list("status", flat=True)) == ["pending"]
    assert Execution.objects.count() == 2
    assert run("replay", "--verify", "--all").endswith(" checked, 0 difference(s)\n")


def test_quickstart_admin_prints_a_working_one_time_password(settings):
    settings.IS_DEV = True
    first_line, totp_line = run("quickstart_admin").splitlines()
    password = first_line.rsplit(" ", 1)[-1].strip()
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_superuser
    assert Principal.objects.get(user=user).capabilities() == set(CAPABILITIES)
    assert "admin.access" in CAPABILITIES
    assert totp_line.startswith("Admin second factor (TOTP): otpauth://totp/")
    second = run("quickstart_admin").splitlines()[0].rsplit(" ", 1)[-1].strip()
    assert second != password and authenticate(username="admin", password=password) is None


def test_quickstart_admin_refuses_outside_dev(settings):
    settings.IS_DEV = False
    with pytest.raises(CommandError, match="VALIDATION_FAILED"):
        run("quickstart_admin")
    assert not Principal.objects.exists()


def test_reason_code_docs_are_current():
    assert run("reasons", "docs", "--check") == "docs/reason-codes.md is up to date\n"


def test_reasons_list_has_every_code():
    lines = run("reasons", "list").splitlines()
    assert [line.split("\t")[0] for line in lines] == list(CATALOGUE)
