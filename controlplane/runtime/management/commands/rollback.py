"""`manage.py rollback EXECUTION STEP --reason R`: undo a completed step with its compensating action.

Acts for the person whose API token is in `CONTROLPLANE_TOKEN` (or `--token-file`), holding
`intents.submit` as the API requires; the rollback is an intent of its own (services/rollback.py).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.runtime.models import Execution
from controlplane.runtime.services.rollback import step_rollback


class Command(BaseCommand):
    help = "Roll back a completed step: its compensating action, run as a governed step of its own."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("execution")
        parser.add_argument("step")
        parser.add_argument("--reason", required=True)
        add_token_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            actor = cli_principal(options, capability="intents.submit")
            execution = Execution.objects.filter(pk=options["execution"], tenant=actor.tenant).first()
            if execution is None:
                raise ControlPlaneError("NOT_FOUND", "no such execution in your tenant")
            intent = step_rollback(
                execution=execution, step_key=options["step"], actor=actor, reason=options["reason"]
            )
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        if intent.rejection:
            raise CommandError(f"{intent.rejection['code']}: {intent.rejection.get('detail', '')}")
        execution_id = intent.execution.id if hasattr(intent, "execution") else ""
        self.stdout.write(
            f"rollback of {options['step']}: intent {intent.id} {intent.status} {execution_id}".rstrip()
        )
