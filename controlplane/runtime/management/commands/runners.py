"""`manage.py runners register NAME --url URL [--secret-env VAR] [--timeout S] | disable NAME | list`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.shell import cli_actor
from controlplane.runtime.executors import runner_secret
from controlplane.runtime.models import Runner
from controlplane.runtime.runners import runner_disable, runner_register


class Command(BaseCommand):
    help = "Register, disable or list the runners http.webhook steps are sent to (secrets stay in the env)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        register = sub.add_parser("register")
        register.add_argument("name")
        register.add_argument("--url", required=True)
        register.add_argument("--secret-env", default="", help="default CONTROLPLANE_RUNNER_SECRET")
        register.add_argument("--timeout", type=int, default=None, help="seconds (1-300)")
        disable = sub.add_parser("disable")
        disable.add_argument("name")
        disable.add_argument("--reason", required=True)
        sub.add_parser("list")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["verb"] == "register":
                runner = runner_register(
                    name=options["name"],
                    url=options["url"],
                    secret_env=options["secret_env"],
                    timeout_seconds=options["timeout"],
                    actor=cli_actor(),
                )
                self.stdout.write(f"registered {runner.name} {runner.url}")
            elif options["verb"] == "disable":
                runner = runner_disable(name=options["name"], reason=options["reason"], actor=cli_actor())
                self.stdout.write(f"disabled {runner.name}")
            else:
                for runner in Runner.objects.all():
                    secret = "set" if runner_secret(runner.secret_env) else "MISSING"
                    self.stdout.write(
                        f"{runner.name}\t{'enabled' if runner.enabled else 'disabled'}\t{runner.url}\t"
                        f"{runner.secret_env or 'CONTROLPLANE_RUNNER_SECRET'}={secret}\t"
                        f"timeout={runner.timeout_seconds or 'default'}"
                    )
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
