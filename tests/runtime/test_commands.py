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
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def operator(monkeypatch):
    """A platform operator (action-wide switches are installation-wide), whose API token the commands
    read from CONTROLPLANE_TOKEN."""
    principal = PrincipalFactory(
        tenant=TenantFactory(slug="acme"),
        name="olga",
        human=True,
        capabilities=["killswitch.manage", "platform.killswitch.manage"],
    )
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(principal))
    return principal


def test_killswitch_engage_status_release(operator):
    assert run("killswitch", "status") == "released: nothing new is held\n"
    assert run("killswitch", "engage", "--action", "noop.echo", "--reason", "bad echo") == (
        "ENGAGED action noop.echo: bad echo\n"
    )
    assert killswitch_engaged_for(tenant="acme", action="noop.echo") is not None
    assert killswitch_engaged_for(tenant="acme", action="http.webhook") is None
    assert "ENGAGED\taction\tnoop.echo\tbad echo\tacme/olga\tholding 0" in run("killswitch", "status")
    assert run("killswitch", "release", "--action", "noop.echo", "--reason", "fixed") == (
        "released action noop.echo: fixed\nheld work (decide): resumed 0, cancelled 0, still held 0\n"
    )
    assert killswitch_engaged_for(tenant="acme", action="noop.echo") is None
    assert LedgerEvent.objects.filter(type__startswith="controlplane.killswitch").count() == 2


def test_a_tenant_operator_cannot_turn_the_global_switch_from_the_cli(monkeypatch):
    """Before, the command passed the principal's name as a plain string: the service took it for the
    installation itself and skipped the scope check, so a tenant's `killswitch.manage` turned every switch."""
    tenant_only = PrincipalFactory(
        tenant=TenantFactory(slug="acme"), name="tom", human=True, capabilities=["killswitch.manage"]
    )
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(tenant_only))
    for scope in ([], ["--action", "noop.echo"], ["--tenant", "globex"]):
        with pytest.raises(CommandError, match=r"^PLATFORM_SCOPE_REQUIRED"):
            run("killswitch", "engage", *scope, "--reason", "mine")
    assert not LedgerEvent.objects.filter(type__startswith="controlplane.killswitch").exists()
    assert (
        run("killswitch", "engage", "--tenant", "acme", "--reason", "ours") == "ENGAGED tenant acme: ours\n"
    )


def test_killswitch_held_resume_and_cancel(operator, django_capture_on_commit_callbacks):
    from controlplane.celery import app as celery_app
    from controlplane.policy import services as policy
    from controlplane.runtime import services
    from controlplane.runtime.models import Execution

    policy.profile_bootstrap(environment="dev")
    agent = PrincipalFactory(tenant=operator.tenant, name="bot", agent=True)
    run("killswitch", "engage", "--reason", "drill")
    executions = []
    for key in ("k-1", "k-2", "k-3"):
        intent = services.intent_submit(
            principal=agent,
            draft={"goal": f"echo {key}", "steps": [{"key": "a", "action": "noop.echo"}]},
            idempotency_key=key,
        )
        executions.append(Execution.objects.get(intent=intent))
    listed = run("killswitch", "held").splitlines()
    assert [line.split("\t")[0] for line in listed] == [e.pk for e in executions]
    assert listed[0].split("\t")[3:] == ["global/*", "a", "echo k-1"]
    with pytest.raises(CommandError, match=r"^KILL_SWITCH_ENGAGED"):
        run("killswitch", "resume", executions[0].pk, "--reason", "too early")
    assert "held by the kill switch: 3 execution(s)" in run("killswitch", "status")
    run("killswitch", "release", "--reason", "drill over")  # decide one by one
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert run("killswitch", "resume", executions[0].pk, "--reason", "needed").startswith("resumed ")
    finally:
        celery_app.conf.task_always_eager = False
    assert run("killswitch", "cancel", executions[1].pk, "--reason", "stale").startswith("cancelled ")
    with pytest.raises(CommandError, match=r"^NOT_FOUND"):
        run("killswitch", "cancel", "f" * 64, "--reason", "x")
    statuses = [Execution.objects.get(pk=e.pk).status for e in executions]
    assert statuses == ["completed", "cancelled", "running"]
    assert [line.split("\t")[0] for line in run("killswitch", "held").splitlines()] == [executions[2].pk]


def test_killswitch_needs_a_reason_and_writes_nothing_without_one(operator):
    with pytest.raises(CommandError, match="KILL_SWITCH_REASON_REQUIRED"):
        run("killswitch", "engage", "--reason", " ")
    assert not LedgerEvent.objects.filter(type__startswith="controlplane.killswitch").exists()


def test_killswitch_refuses_without_a_valid_token_or_capability(monkeypatch, tmp_path):
    weak = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="ro", human=True, capabilities=[])
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"^AUTH_REQUIRED: "):
        run("killswitch", "engage", "--reason", "drill")
    bad = tmp_path / "token"
    bad.write_text("cp_00000000_wrong\n")
    with pytest.raises(CommandError, match=r"^AUTH_INVALID_TOKEN"):
        run("killswitch", "engage", "--reason", "drill", "--token-file", str(bad))
    with pytest.raises(CommandError, match=r"^AUTH_REQUIRED: cannot read --token-file"):
        run("killswitch", "engage", "--reason", "drill", "--token-file", str(tmp_path / "absent"))
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(weak))
    with pytest.raises(CommandError, match=r"^CAPABILITY_MISSING: acme/ro lacks 'killswitch.manage'"):
        run("killswitch", "engage", "--reason", "drill")
    assert not LedgerEvent.objects.filter(type__startswith="controlplane.killswitch").exists()
    assert killswitch_engaged_for(tenant="acme", action="noop.echo") is None


def _resolve_nothing(approval) -> None:
    """The test subject's owner: nothing to do on a decision."""


def _open(*, requested_by, quorum=1, content_hash="c" * 64):
    import approvals.registry as registry

    registry.register_subject("test.cli", _resolve_nothing)
    return approvals.approval_request_open(
        subject_kind="test.cli",
        subject_id="1",
        content_hash=content_hash,
        requested_by=requested_by,
        risk_tier="critical" if quorum > 1 else "high",
        quorum=quorum,
        summary={"action": "db.failover", "inputs": {"cluster": "payments"}},
        reason_codes=["POLICY_REQUIRE_APPROVAL"],
    )


def test_approvals_list_and_approve_as_a_person(monkeypatch, tmp_path):
    tenant = TenantFactory(slug="acme")
    bot = PrincipalFactory(tenant=tenant, name="bot", agent=True, capabilities=["approvals.decide"])
    alice = PrincipalFactory(
        tenant=tenant, name="alice", human=True, capabilities=["approvals.read", "approvals.decide"]
    )
    request = _open(requested_by=bot)
    assert run("approvals", "list").startswith(f"{request.pk}\tpending\thigh\tquorum=1\ttest.cli:1\tacme/bot")
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(bot))
    with pytest.raises(CommandError, match="APPROVAL_APPROVER_NOT_HUMAN"):
        run("approvals", "approve", request.pk, "--reason", "self", "--content-hash", "c" * 64)
    token_file = tmp_path / "alice.token"
    token_file.write_text(token_for(alice) + "\n")
    shown = run("approvals", "show", request.pk, "--token-file", str(token_file))
    assert '"cluster": "payments"' in shown and shown.endswith(f"content_hash {'c' * 64}\n")
    assert (
        run(
            "approvals",
            "approve",
            request.pk,
            "--reason",
            "ok",
            "--content-hash",
            "c" * 64,
            "--token-file",
            str(token_file),
        )
        == f"{request.pk} approved (1/1)\n"
    )
    assert ApprovalRequest.objects.get().status == "approved"
    decided = LedgerEvent.objects.filter(type="controlplane.approval.request.decided").get()
    assert decided.actor == "acme/alice"


def _decision_events() -> int:
    return (
        LedgerEvent.objects.filter(type__startswith="controlplane.approval.request.")
        .exclude(type="controlplane.approval.request.opened")
        .count()
    )


def test_approve_refuses_an_absent_or_wrong_token_and_writes_nothing(monkeypatch):
    tenant = TenantFactory(slug="acme")
    request = _open(requested_by=PrincipalFactory(tenant=tenant, name="bot", agent=True))
    before = LedgerEvent.objects.count()
    approve = ("approvals", "approve", request.pk, "--reason", "ok", "--content-hash", "c" * 64)
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"^AUTH_REQUIRED: "):
        run(*approve)
    monkeypatch.setenv("CONTROLPLANE_TOKEN", "cp_deadbeef_guessed")
    with pytest.raises(CommandError, match=r"^AUTH_INVALID_TOKEN"):
        run(*approve)
    with pytest.raises(CommandError, match=r"^AUTH_INVALID_TOKEN"):
        run("approvals", "show", request.pk)
    assert LedgerEvent.objects.count() == before
    assert ApprovalRequest.objects.get().status == "pending" and not request.decisions.exists()


def test_one_operator_cannot_meet_a_quorum_of_two_by_running_the_command_twice(monkeypatch):
    tenant = TenantFactory(slug="acme")
    bot = PrincipalFactory(tenant=tenant, name="bot", agent=True)
    alice = PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"])
    request = _open(requested_by=bot, quorum=2)
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(alice))
    approve = ("approvals", "approve", request.pk, "--reason", "ok", "--content-hash", "c" * 64)
    assert run(*approve) == f"{request.pk} pending (1/2)\n"
    second_token = token_for(alice)  # a second token of the same person changes nothing
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match=r"^APPROVAL_DUPLICATE_DECISION: acme/alice has already decided"):
        run(*approve)
    monkeypatch.setenv("CONTROLPLANE_TOKEN", second_token)
    with pytest.raises(CommandError, match=r"^APPROVAL_DUPLICATE_DECISION: "):
        run(*approve)
    assert LedgerEvent.objects.count() == before
    assert ApprovalRequest.objects.get().status == "pending" and request.decisions.count() == 1


def test_self_approval_is_refused_from_the_cli(monkeypatch):
    tenant = TenantFactory(slug="acme")
    alice = PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"])
    request = _open(requested_by=alice)
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(alice))
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match=r"^APPROVAL_SELF_APPROVAL: "):
        run("approvals", "approve", request.pk, "--reason", "mine", "--content-hash", "c" * 64)
    assert LedgerEvent.objects.count() == before
    assert ApprovalRequest.objects.get().status == "pending" and not request.decisions.exists()


def test_a_wrong_content_hash_is_refused(monkeypatch):
    tenant = TenantFactory(slug="acme")
    request = _open(requested_by=PrincipalFactory(tenant=tenant, name="bot", agent=True))
    alice = PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"])
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(alice))
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match=r"^APPROVAL_CONTENT_CHANGED: "):
        run("approvals", "approve", request.pk, "--reason", "ok", "--content-hash", "d" * 64)
    with pytest.raises(CommandError, match=r"the following arguments are required: --content-hash"):
        run("approvals", "approve", request.pk, "--reason", "ok")
    assert LedgerEvent.objects.count() == before
    assert ApprovalRequest.objects.get().status == "pending" and not request.decisions.exists()


def test_another_tenants_approval_is_not_found_from_the_cli(monkeypatch):
    request = _open(requested_by=PrincipalFactory(tenant=TenantFactory(slug="acme"), name="bot", agent=True))
    mallory = PrincipalFactory(
        tenant=TenantFactory(slug="other"), name="mallory", human=True, capabilities=["approvals.decide"]
    )
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(mallory))
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match=r"^APPROVAL_NOT_FOUND: "):
        run("approvals", "approve", request.pk, "--reason", "ok", "--content-hash", "c" * 64)
    assert LedgerEvent.objects.count() == before
