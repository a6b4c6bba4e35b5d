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


def _passwords(output: str) -> dict[str, str]:
    return {
        line.split()[0]: line.split()[2]
        for line in output.splitlines()
        if line.startswith("  ") and " password " in line
    }


def test_quickstart_admin_prints_three_people_whose_passwords_survive_a_restart(settings, tmp_path):
    settings.IS_DEV = True
    settings.CONTROLPLANE_KEY_DIR = tmp_path
    output = run("quickstart_admin")
    passwords = _passwords(output)
    assert set(passwords) == {"admin", "alice", "bob"}
    admin = authenticate(username="admin", password=passwords["admin"])
    assert admin is not None and admin.is_superuser
    assert Principal.objects.get(user=admin).capabilities() == set(CAPABILITIES)
    assert "admin.access" in CAPABILITIES
    alice = Principal.objects.get(user=authenticate(username="alice", password=passwords["alice"]))
    bob = Principal.objects.get(user=authenticate(username="bob", password=passwords["bob"]))
    assert alice.kind == bob.kind == "human"
    assert {"approvals.decide", "incidents.manage", "killswitch.manage"} <= alice.capabilities()
    assert "approvals.decide" in bob.capabilities() and "incidents.manage" not in bob.capabilities()
    totp_line = output.splitlines()[-1]
    assert totp_line.startswith("Admin second factor (TOTP): otpauth://totp/")
    assert (tmp_path / "quickstart-passwords.key").stat().st_mode & 0o777 == 0o600

    # A restart: the same passwords, the same TOTP device, and nobody's session is invalidated.
    session_hash = admin.get_session_auth_hash()
    again = run("quickstart_admin")
    assert _passwords(again) == passwords and again.splitlines()[-1] == totp_line
    admin.refresh_from_db()
    assert admin.get_session_auth_hash() == session_hash

    # --reset: new passwords (the old ones stop working) and a new device.
    reset = run("quickstart_admin", "--reset")
    assert _passwords(reset)["admin"] != passwords["admin"] and reset.splitlines()[-1] != totp_line
    assert authenticate(username="admin", password=passwords["admin"]) is None


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


def test_a_command_piped_to_head_ends_quietly_without_a_traceback():
    """Before, `manage.py ... | head` printed a BrokenPipeError traceback once head had what it wanted;
    manage.py now handles it once for every command."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        # far more than a pipe holds, so the writer meets the closed pipe
        [sys.executable, "manage.py", "shell", "-c", "print('line\\n' * 200000)"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.readline()
    child.stdout.close()  # the reader goes away, as head does
    stderr = child.stderr.read().decode()
    child.wait(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert child.returncode in (0, 141)
