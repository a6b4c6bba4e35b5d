"""`manage.py killswitch engage|release --reason R [--tenant T | --action A] [--held resume|cancel|decide]`,
`killswitch held`, `killswitch resume|cancel EXECUTION --reason R`, `killswitch status`.

Engaging, releasing and deciding on held work act for the person whose API token is in
`CONTROLPLANE_TOKEN` (or `--token-file`), with the capability the API requires and the same scope rules
(the global and action-wide switches, and other tenants' switches and held work, need
`platform.killswitch.manage`); the ledger names that principal, not the shell. `status` is a read of the
installation (every switch, and how many executions each holds).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.runtime import selectors
from controlplane.runtime.api import KillSwitchView
from controlplane.runtime.models import KillSwitch
from controlplane.runtime.services import HELD_CHOICES, killswitch_held_decide, killswitch_set


class Command(BaseCommand):
    help = (
        "Engage or release the kill switch (global, per tenant, per action); list, resume or cancel what it "
        "held; or show its status."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for verb in ("engage", "release"):
            cmd = sub.add_parser(verb)
            scope = cmd.add_mutually_exclusive_group()
            scope.add_argument("--tenant")
            scope.add_argument("--action", dest="action_name")
            cmd.add_argument("--reason", required=True)
            if verb == "release":
                cmd.add_argument(
                    "--held",
                    choices=HELD_CHOICES,
                    default="decide",
                    help="what becomes of the steps this switch held: resume them, cancel their "
                    "executions, or decide one by one later (default: they stay held)",
                )
            add_token_argument(cmd)
        held = sub.add_parser("held", help="the executions the kill switch holds that you may decide on")
        add_token_argument(held)
        for verb in ("resume", "cancel"):
            cmd = sub.add_parser(verb, help=f"{verb} one execution the kill switch held")
            cmd.add_argument("execution")
            cmd.add_argument("--reason", required=True)
            add_token_argument(cmd)
        sub.add_parser("status")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _status(self, options: dict[str, Any]) -> None:
        switches = list(KillSwitch.objects.all())
        held = selectors.killswitch_held_executions(principal=None)
        if not any(s.engaged for s in switches):
            self.stdout.write("released: nothing new is held")
        for switch in switches:
            state = "ENGAGED" if switch.engaged else "released"
            holding = selectors.killswitch_holding(switch=switch, held=held)
            self.stdout.write(
                f"{state}\t{switch.scope}\t{switch.target or '*'}\t{switch.reason}\t{switch.changed_by}"
                f"\tholding {holding}"
            )
        if held:
            self.stdout.write(f"held by the kill switch: {len(held)} execution(s) (`killswitch held`)")

    def _engage(self, options: dict[str, Any]) -> None:
        self._turn(options, engaged=True)

    def _release(self, options: dict[str, Any]) -> None:
        self._turn(options, engaged=False)

    def _turn(self, options: dict[str, Any], *, engaged: bool) -> None:
        scope, target = "global", ""
        if options["tenant"]:
            scope, target = "tenant", options["tenant"]
        elif options["action_name"]:
            scope, target = "action", options["action_name"]
        actor = cli_principal(options, capability=KillSwitchView.required_capability)
        switch = killswitch_set(
            scope=scope,
            target=target,
            engaged=engaged,
            reason=options["reason"],
            actor=actor,
            held=options.get("held") or "decide",
        )
        self.stdout.write(
            f"{'ENGAGED' if switch.engaged else 'released'} {scope} {target or '*'}: {switch.reason}"
        )
        if not engaged:
            done = switch.held_result
            self.stdout.write(
                f"held work ({options['held']}): resumed {done['resumed']}, cancelled {done['cancelled']}, "
                f"still held {done['still_held']}"
            )

    def _held(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability=KillSwitchView.required_capability)
        held = selectors.killswitch_held_executions(principal=actor)
        if not held:
            self.stdout.write("nothing is held by the kill switch")
        for entry in held:
            execution = entry.execution
            engaged = ",".join(f"{s.scope}/{s.target or '*'}" for s in entry.engaged) or "released"
            since = entry.held_since.strftime("%Y-%m-%dT%H:%M:%SZ") if entry.held_since else "-"
            self.stdout.write(
                f"{execution.id}\t{execution.tenant.slug}\t{since}\t{engaged}\t"
                f"{','.join(run.step.key for run in entry.steps)}\t{execution.plan.goal}"
            )

    def _resume(self, options: dict[str, Any]) -> None:
        self._decide(options, decision="resume")

    def _cancel(self, options: dict[str, Any]) -> None:
        self._decide(options, decision="cancel")

    def _decide(self, options: dict[str, Any], *, decision: str) -> None:
        actor = cli_principal(options, capability=KillSwitchView.required_capability)
        execution = selectors.killswitch_decidable_execution(
            principal=actor, execution_id=options["execution"]
        )
        if execution is None:
            raise ControlPlaneError(
                "NOT_FOUND", f"no execution {options['execution']} visible to {actor.ref}"
            )
        result = killswitch_held_decide(
            execution=execution, decision=decision, reason=options["reason"], actor=actor
        )
        done = "resumed" if decision == "resume" else "cancelled"
        self.stdout.write(f"{done} {execution.id}: {result}")
