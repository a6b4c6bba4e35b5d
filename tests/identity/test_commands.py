"""`manage.py principals ...` end to end."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane.identity.models import ApiToken, Principal
from controlplane.identity.services import token_authenticate
from controlplane.ledger.models import LedgerEvent
from tests.identity.factories import UserFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("principals", *args, stdout=out)
    return out.getvalue()


def test_create_grant_issue_list_revoke_round_trip():
    assert (
        run("create", "deploy-bot", "--tenant", "acme", "--kind", "agent")
        == "created acme/deploy-bot (agent)\n"
    )
    assert (
        run("grant", "deploy-bot", "ledger.read", "--tenant", "acme")
        == "granted ledger.read to acme/deploy-bot\n"
    )
    out = run("issue-token", "deploy-bot", "--tenant", "acme", "--label", "ci").splitlines()
    secret = out[-1]
    token = ApiToken.objects.get()
    assert out[0] == f"token {token.prefix} for acme/deploy-bot (shown once):"
    assert token_authenticate(secret=secret).principal.name == "deploy-bot"
    listing = run("list", "--tenant", "acme")
    assert listing == f"acme/deploy-bot\tagent\tactive\tledger.read\ttokens={token.prefix}\n"
    assert run("revoke-token", token.prefix) == f"revoked token {token.prefix}\n"
    assert (
        run("revoke", "deploy-bot", "ledger.read", "--tenant", "acme")
        == "revoked ledger.read from acme/deploy-bot\n"
    )
    types = list(
        LedgerEvent.objects.filter(type__startswith="controlplane.identity").values_list("type", flat=True)
    )
    assert types == [
        "controlplane.identity.tenant.created",
        "controlplane.identity.principal.created",
        "controlplane.identity.grant.added",
        "controlplane.identity.token.issued",
        "controlplane.identity.token.revoked",
        "controlplane.identity.grant.revoked",
    ]


def test_human_linked_to_a_user():
    user = UserFactory(username="alice")
    run("create", "alice", "--tenant", "acme", "--kind", "human", "--user", "alice")
    assert Principal.objects.get(name="alice").user == user


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("grant", "ghost", "ledger.read", "--tenant", "acme"), "PRINCIPAL_NOT_FOUND"),
        (("grant", "bot", "root.everything", "--tenant", "acme"), "CAPABILITY_UNKNOWN"),
        (("revoke", "bot", "ledger.read", "--tenant", "acme"), "GRANT_NOT_FOUND"),
        (("issue-token", "bot", "--tenant", "nowhere"), "TENANT_NOT_FOUND"),
        (("revoke-token", "deadbeef"), "TOKEN_NOT_FOUND"),
        (("create", "bot", "--tenant", "acme", "--kind", "service"), "PRINCIPAL_EXISTS"),
        (("grant", "bot", "ledger.read", "--tenant", "acme", "--expires", "tomorrow"), "VALIDATION_FAILED"),
    ],
)
def test_refusals_name_their_code_and_write_nothing(args, code):
    run("create", "bot", "--tenant", "acme", "--kind", "service")
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match=code):
        run(*args)
    assert LedgerEvent.objects.count() == before


def test_installation_commands_are_ledgered_as_the_shell_user(monkeypatch):
    """No token needed for installation commands, but the ledger names the OS user and the host."""
    import getpass
    import socket

    monkeypatch.setattr(getpass, "getuser", lambda: "ops-root")
    monkeypatch.setattr(socket, "gethostname", lambda: "cp-host-1")
    run("create", "svc", "--tenant", "acme", "--kind", "service")
    events = LedgerEvent.objects.filter(type__startswith="controlplane.identity.")
    actors = set(events.values_list("actor", flat=True))
    assert actors == {"cli:ops-root@cp-host-1"}


def test_admin_otp_enrol_prints_an_otpauth_url_and_ledgers_no_secret():
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = get_user_model().objects.create_user(username="root")
    out = StringIO()
    call_command("admin_otp", "enrol", "root", stdout=out)
    device = TOTPDevice.objects.get(user=user)
    assert out.getvalue().startswith("TOTP device 'default' for root: otpauth://totp/")
    event = LedgerEvent.objects.get(type="controlplane.identity.user.changed")
    assert event.data["secrets_changed"] == ["otp_device"] and device.key not in str(event.data)
    assert event.actor.startswith("cli:")
