"""`manage.py admin_otp enrol USERNAME`: give an administrator a TOTP device for the admin's second factor.

An installation command (shell-privileged, ledgered as `cli:<os user>@<host>`): it prints the device's
otpauth:// URL once; scan it with an authenticator app (or feed the secret to `oathtool --totp -b`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity import services
from controlplane.kernel.shell import cli_actor


class Command(BaseCommand):
    help = "Enrol a TOTP device for a Django user (the admin's second factor); prints its otpauth:// URL."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        enrol = sub.add_parser("enrol", help="create a TOTP device and print its otpauth:// URL")
        enrol.add_argument("username")
        enrol.add_argument("--name", default="default", help="the device's name (several are allowed)")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"VALIDATION_FAILED: no Django user {options['username']!r}")
        device = services.user_otp_enrol(user=user, name=options["name"], actor=cli_actor())
        self.stdout.write(f"TOTP device {device.name!r} for {user.get_username()}: {device.config_url}")
