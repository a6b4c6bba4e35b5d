"""`manage.py runners register NAME --url URL [--tenant T] [--secret-env VAR] [--timeout S] | disable NAME |
grant NAME --tenant T | revoke NAME --tenant T --reason R | list`.

A runner registered without `--tenant` is shared: no tenant's steps may use it until it is granted.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.selectors import tenant_get
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.shell import cli_actor
from controlplane.runtime.executors import runner_secret
from controlplane.runtime.models import Runner
from controlplane.runtime.runners import runner_disable, runner_grant, runner_grant_revoke, runner_register


class Command(BaseCommand):
    help = "Register, disable or list the runners http.webhook steps are sent to (secrets stay in the env)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        register = sub.add_parser("register")
        register.add_argument("name")
        register.add_argument("--url", required=True)
        register.add_argument("--secret-env", default="", help="default CONTROLPLANE_RUNNER_SECRET")
        register.add_argument("--timeout", type=int, default=None, help="seconds (1-300)")
        register.add_argument("--tenant", default="", help="the owning tenant; none: a shared runner")
        grant = sub.add_parser("grant")
        grant.add_argument("name")
        grant.add_argument("--tenant", required=True)
        revoke = sub.add_parser("revoke")
        revoke.add_argument("name")
        revoke.add_argument("--tenant", required=True)
        revoke.add_argument("--reason", required=True)
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
                    tenant=tenant_get(slug=options["tenant"]) if options["tenant"] else None,
                    actor=cli_actor(),
                )
                self.stdout.write(f"registered {runner.name} {runner.url}")
            elif options["verb"] == "grant":
                runner_grant(
                    name=options["name"], tenant=tenant_get(slug=options["tenant"]), actor=cli_actor()
                )
                self.stdout.write(f"granted {options['name']} to {options['tenant']}")
            elif options["verb"] == "revoke":
                runner_grant_revoke(
                    name=options["name"],
                    tenant=tenant_get(slug=options["tenant"]),
                    reason=options["reason"],
                    actor="cli",
                )
                self.stdout.write(f"revoked {options['name']} from {options['tenant']}")
            elif options["verb"] == "disable":
                runner = runner_disable(name=options["name"], reason=options["reason"], actor=cli_actor())
                self.stdout.write(f"disabled {runner.name}")
            else:
                for runner in Runner.objects.select_related("tenant").prefetch_related("grants__tenant"):
                    secret = "set" if runner_secret(runner.secret_env) else "MISSING"
                    owner = (
                        f"tenant:{runner.tenant.slug}"
                        if runner.tenant
                        else "shared:" + ",".join(sorted(g.tenant.slug for g in runner.grants.all()))
                    )
                    self.stdout.write(
                        f"{runner.name}\t{'enabled' if runner.enabled else 'disabled'}\t{runner.url}\t"
                        f"{runner.secret_env or 'CONTROLPLANE_RUNNER_SECRET'}={secret}\t"
                        f"timeout={runner.timeout_seconds or 'default'}\t{owner}"
                    )
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
