"""`manage.py quickstart_admin`: the quickstart's administrator, with a fresh one-time password each run."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from controlplane.identity import services
from controlplane.identity.capabilities import CAPABILITIES
from controlplane.identity.models import PrincipalKind
from controlplane.kernel.shell import cli_actor


class Command(BaseCommand):
    help = (
        "Create (or reset) the quickstart admin: a superuser linked to a human principal holding every grant."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--tenant", default="acme")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if not getattr(settings, "IS_DEV", False):
            raise CommandError("VALIDATION_FAILED: quickstart_admin is for the dev quickstart only")
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=options["username"])
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        tenant = services.tenant_create(slug=options["tenant"], actor=cli_actor())
        services.principal_ensure(
            tenant=tenant,
            name=options["username"],
            kind=PrincipalKind.HUMAN,
            capabilities=sorted(CAPABILITIES),
            user=user,
            actor=cli_actor(),
        )
        from django_otp.plugins.otp_totp.models import TOTPDevice

        TOTPDevice.objects.filter(
            user=user, name="quickstart"
        ).delete()  # a fresh secret each run, as the password
        device = services.user_otp_enrol(user=user, name="quickstart", actor=cli_actor())
        self.stdout.write(
            f"Sign in at http://127.0.0.1:8000/ as {options['username']} with one-time password: {password}"
        )
        # The admin (/admin/) also asks for a TOTP code: add this device to an authenticator app.
        self.stdout.write(f"Admin second factor (TOTP): {device.config_url}")
