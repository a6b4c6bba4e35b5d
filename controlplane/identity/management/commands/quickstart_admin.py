"""`manage.py quickstart_admin [--reset]`: the quickstart's people -- an administrator and two more humans
with different grants, so the four-eyes flows can be finished in the console -- with their sign-in details.

- `admin`: every capability, staff and superuser (the Django admin asks for a TOTP code too);
- `alice`, on call and the first approver: the console, approve, acknowledge and change incidents,
  silences, her tenant's kill switch;
- `bob`, the second approver (quorum 2, or someone else's request): the console, approve, read incidents
  and executions.

Each password is the quickstart's own, called what it is: derived from a secret generated once in
`CONTROLPLANE_KEY_DIR` (beside the dev ledger key), so it is the same every time the quickstart starts and
a restart signs nobody out (a password is only set when the user is made, and the admin's TOTP device is
kept). `--reset` makes a new secret, new passwords and a new TOTP device (everyone signs in again). A
password someone changed in the admin is left alone and said so.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from base64 import urlsafe_b64encode
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from controlplane.identity import services
from controlplane.identity.capabilities import CAPABILITIES
from controlplane.identity.models import PrincipalKind
from controlplane.kernel.shell import cli_actor

SECRET_FILE = "quickstart-passwords.key"  # noqa: S105 - a file name; the secret is in the file

ONCALL = [
    "console.view",
    "approvals.read",
    "approvals.decide",
    "executions.read",
    "executions.cancel",
    "incidents.read",
    "incidents.manage",
    "silences.manage",
    "killswitch.manage",
    "ledger.read",
    "ledger.verify",
]
SECOND_APPROVER = ["console.view", "approvals.read", "approvals.decide", "executions.read", "incidents.read"]
PEOPLE = [("alice", "on call, first approver", ONCALL), ("bob", "second approver", SECOND_APPROVER)]


def _secret(*, reset: bool) -> bytes:
    """The quickstart's password secret: made once (0600) in the dev key directory, replaced by --reset."""
    path = Path(settings.CONTROLPLANE_KEY_DIR) / SECRET_FILE
    if reset or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(32))
    return path.read_bytes()


def quickstart_password(secret: bytes, username: str) -> str:
    """A user's quickstart password: the same for the same secret, 16 URL-safe characters."""
    digest = hmac.new(secret, f"quickstart-password:{username}".encode(), hashlib.sha256).digest()
    return urlsafe_b64encode(digest).decode()[:16]


class Command(BaseCommand):
    help = (
        "Create the quickstart's people (admin with every grant, alice on call, bob second approver) and "
        "print how they sign in; their passwords stay the same across restarts (--reset: new ones)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--tenant", default="acme")
        parser.add_argument(
            "--reset", action="store_true", help="new passwords and a new admin TOTP device (signs all out)"
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if not getattr(settings, "IS_DEV", False):
            raise CommandError("VALIDATION_FAILED: quickstart_admin is for the dev quickstart only")
        reset = options["reset"]
        secret = _secret(reset=reset)
        tenant = services.tenant_create(slug=options["tenant"], actor=cli_actor())
        people = [(options["username"], "administrator, every grant", sorted(CAPABILITIES)), *PEOPLE]
        self.stdout.write(
            "Sign in at http://127.0.0.1:8000/ (quickstart passwords, the same at every restart):"
        )
        for username, role, capabilities in people:
            admin = username == options["username"]
            user, created = get_user_model().objects.get_or_create(username=username)
            password = quickstart_password(secret, username)
            if admin and not (user.is_staff and user.is_superuser):
                user.is_staff = user.is_superuser = True
                user.save(update_fields=["is_staff", "is_superuser"])
            if created or reset:
                user.set_password(password)
                user.save()
            services.principal_ensure(
                tenant=tenant,
                name=username,
                kind=PrincipalKind.HUMAN,
                capabilities=capabilities,
                user=user,
                actor=cli_actor(),
            )
            shown = (
                password if user.check_password(password) else "(changed since; `quickstart_admin --reset`)"
            )
            self.stdout.write(f"  {username:<6} password {shown}  -- {role}")
        self.stdout.write(f"Admin second factor (TOTP): {self._totp_url(options['username'], reset=reset)}")

    def _totp_url(self, username: str, *, reset: bool) -> str:
        """The admin's TOTP device (the Django admin asks for its codes): kept across restarts."""
        from django_otp.plugins.otp_totp.models import TOTPDevice

        user = get_user_model().objects.get(username=username)
        device = TOTPDevice.objects.filter(user=user, name="quickstart").first()
        if device is None or reset:
            TOTPDevice.objects.filter(user=user, name="quickstart").delete()
            device = services.user_otp_enrol(user=user, name="quickstart", actor=cli_actor())
        return device.config_url
