"""`manage.py killswitch engage --reason R [--tenant T | --action A] | release --reason R | status`.

Engaging and releasing act for the person whose API token is in `CONTROLPLANE_TOKEN` (or `--token-file`),
with the capability the API requires; the ledger names that principal, not the shell.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.runtime.api import KillSwitchView
from controlplane.runtime.models import KillSwitch
from controlplane.runtime.services import killswitch_set


class Command(BaseCommand):
    help = "Engage or release the kill switch (global, per tenant, per action), or show its status."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for verb in ("engage", "release"):
            cmd = sub.add_parser(verb)
            scope = cmd.add_mutually_exclusive_group()
            scope.add_argument("--tenant")
            scope.add_argument("--action", dest="action_name")
            cmd.add_argument("--reason", required=True)
            add_token_argument(cmd)
        sub.add_parser("status")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "status":
            switches = list(KillSwitch.objects.all())
            if not any(s.engaged for s in switches):
                self.stdout.write("released: nothing is held")
            for switch in switches:
                state = "ENGAGED" if switch.engaged else "released"
                self.stdout.write(
                    f"{state}\t{switch.scope}\t{switch.target or '*'}\t{switch.reason}\t{switch.changed_by}"
                )
            return
        scope, target = "global", ""
        if options["tenant"]:
            scope, target = "tenant", options["tenant"]
        elif options["action_name"]:
            scope, target = "action", options["action_name"]
        try:
            actor = cli_principal(options, capability=KillSwitchView.required_capability)
            switch = killswitch_set(
                scope=scope,
                target=target,
                engaged=options["action"] == "engage",
                reason=options["reason"],
                actor=actor.ref,
            )
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        self.stdout.write(
            f"{'ENGAGED' if switch.engaged else 'released'} {scope} {target or '*'}: {switch.reason}"
        )
