"""`manage.py killswitch` and `manage.py approvals`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.selectors import killswitch_engaged_for
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_killswitch_engage_status_release():
    assert run("killswitch", "status") == "released: nothing is held\n"
    assert run("killswitch", "engage", "--action", "noop.echo", "--reason", "bad echo") == (
        "ENGAGED action noop.echo: bad echo\n"
    )
    assert killswitch_engaged_for(tenant="acme", action="noop.echo") is not None
    assert killswitch_engaged_for(tenant="acme", action="http.webhook") is None
    assert "ENGAGED\taction\tnoop.echo\tbad echo\tcli" in run("killswitch", "status")
    run("killswitch", "release", "--action", "noop.echo", "--reason", "fixed")
    assert killswitch_engaged_for(tenant="acme", action="noop.echo") is None
    assert LedgerEvent.objects.filter(type__startswith="controlplane.killswitch").count() == 2


def test_killswitch_needs_a_reason_and_writes_nothing_without_one():
    with pytest.raises(CommandError, match="KILL_SWITCH_REASON_REQUIRED"):
        run("killswitch", "engage", "--reason", " ")
    assert not LedgerEvent.objects.filter(type__startswith="controlplane.killswitch").exists()


def test_approvals_list_and_approve_as_a_person():
    import approvals.registry as registry

    registry.register_subject("test.cli", lambda request: None)
    tenant = TenantFactory(slug="acme")
    bot = PrincipalFactory(tenant=tenant, name="bot", agent=True)
    PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"])
    request = approvals.approval_request_open(
        subject_kind="test.cli",
        subject_id="1",
        content_hash="c" * 64,
        requested_by=bot,
        risk_tier="high",
        quorum=1,
        summary={},
        reason_codes=[],
    )
    assert run("approvals", "list").startswith(f"{request.pk}\tpending\thigh\tquorum=1\ttest.cli:1\tacme/bot")
    with pytest.raises(CommandError, match="APPROVAL_APPROVER_NOT_HUMAN"):
        run("approvals", "approve", request.pk, "--as", "acme/bot", "--reason", "self")
    assert (
        run("approvals", "approve", request.pk, "--as", "acme/alice", "--reason", "ok")
        == f"{request.pk} approved (1/1)\n"
    )
    assert ApprovalRequest.objects.get().status == "approved"
