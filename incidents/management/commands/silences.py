"""`manage.py silences list | create | expire ID` — silences, made and ended by an authenticated person.

`create` and `expire` act for the person whose API token is in `CONTROLPLANE_TOKEN` (or `--token-file`),
with the capability the API requires (`silences.manage`), through the same services: a silence that could
hide high or critical signals waits for approval, exactly as through the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.kernel.errors import ControlPlaneError
from incidents import selectors, services
from incidents.api import READ
from incidents.models import Silence

MANAGE_SILENCES = "silences.manage"


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ControlPlaneError("VALIDATION_FAILED", f"{text!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise ControlPlaneError("VALIDATION_FAILED", f"{text!r} has no time zone")
    return value


class Command(BaseCommand):
    help = "List, create and expire silences as the person whose API token is given."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="the silences of the token's tenant")
        add_token_argument(listing)
        create = sub.add_parser("create", help="silence signals matching a service, a name and labels")
        create.add_argument("--service", default="")
        create.add_argument("--name", default="")
        create.add_argument("--label", action="append", default=[], help="NAME=VALUE (repeatable)")
        create.add_argument("--starts-at", help="ISO 8601 with a zone (default: now)")
        create.add_argument("--ends-at", required=True, help="ISO 8601 with a zone")
        create.add_argument("--reason", required=True)
        add_token_argument(create)
        expire = sub.add_parser("expire", help="end a silence now")
        expire.add_argument("id")
        expire.add_argument("--reason", required=True)
        add_token_argument(expire)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"])(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _print(self, silence: Silence) -> None:
        self.stdout.write(
            f"{silence.pk}\t{silence.status}\t{services.silence_state(silence)}\t"
            f"{silence.match_service or '*'}\t{silence.match_name or '*'}\t{silence.ends_at.isoformat()}"
        )

    def _list(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability=READ)
        for silence in selectors.silence_list(tenant=actor.tenant):
            self._print(silence)

    def _create(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability=MANAGE_SILENCES)
        labels = {}
        for label in options["label"]:
            name, sep, value = label.partition("=")
            if not sep or not name:
                raise ControlPlaneError("VALIDATION_FAILED", f"--label {label!r} is not NAME=VALUE")
            labels[name] = value
        silence = services.silence_create(
            actor=actor,
            reason=options["reason"],
            starts_at=_when(options["starts_at"]) if options["starts_at"] else None,
            ends_at=_when(options["ends_at"]),
            match_service=options["service"],
            match_name=options["name"],
            match_labels=labels,
        )
        self._print(silence)

    def _expire(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability=MANAGE_SILENCES)
        silence = Silence.objects.filter(pk=options["id"], tenant_id=actor.tenant_id).first()
        if silence is None:
            raise ControlPlaneError("NOT_FOUND", f"no silence {options['id']!r}")
        self._print(services.silence_expire(silence=silence, actor=actor, reason=options["reason"]))
