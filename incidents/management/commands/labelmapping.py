"""`manage.py labelmapping show | set LABEL... --reason R` — which alert labels name a signal's service.

Both act for the person whose API token is in `CONTROLPLANE_TOKEN` (or `--token-file`), in the token's
tenant, with the capabilities the API requires (`incidents.read` to show, `detection.manage` to set),
through the same service (`label_mapping_set`: a new version, ledgered); refusals exit non-zero with
`CommandError: <REASON_CODE>: <detail>`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.kernel.errors import ControlPlaneError
from incidents import services
from incidents.api import READ


class Command(BaseCommand):
    help = "Show or set the labels (tried in order) that name an Alertmanager or Grafana alert's service."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        show = sub.add_parser("show", help="the token's tenant's current label mapping")
        add_token_argument(show)
        change = sub.add_parser("set", help="make LABEL... (in order) the mapping: a new version")
        change.add_argument("labels", nargs="+", metavar="LABEL")
        change.add_argument("--reason", required=True)
        add_token_argument(change)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "show":
                principal = cli_principal(options, capability=READ)
            else:
                principal = cli_principal(options, capability="detection.manage")
                services.label_mapping_set(
                    tenant=principal.tenant,
                    service_labels=options["labels"],
                    actor=principal,
                    reason=options["reason"],
                )
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        mapping = services.label_mapping_current(tenant=principal.tenant)
        default = " (the default)" if mapping.version == 0 else ""
        self.stdout.write(f"v{mapping.version}{default}: service <- {' | '.join(mapping.service_labels)}")
