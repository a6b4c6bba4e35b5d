"""`manage.py plugins register FILE | list | show NAME | quarantine NAME | dismiss ITEM | release NAME`.

Every subcommand acts or reads for the person (or service) whose API token is in `CONTROLPLANE_TOKEN` (or
`--token-file`), with the capability the API requires, through the same services: `register` registers in
that principal's tenant (`--shared`: installation-wide, with the platform grant), `quarantine` and
`dismiss` need a person and a reason, `release` opens the `plugins.release` approval request (people
decide it in the approval queue or with `manage.py approvals approve`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.kernel.errors import ControlPlaneError
from plugins import selectors, services


class Command(BaseCommand):
    help = "Register, list, show, quarantine, dismiss review items of, and ask to release plugins."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        register = sub.add_parser("register", help="register a plugin manifest (JSON file)")
        register.add_argument("file")
        register.add_argument("--shared", action="store_true", help="installation-wide (platform grant)")
        listing = sub.add_parser("list", help="every plugin in reach with its state and reason")
        show = sub.add_parser("show", help="one plugin's state, evidence and back-off (JSON)")
        show.add_argument("name")
        quarantine = sub.add_parser("quarantine", help="quarantine a plugin, with a reason")
        quarantine.add_argument("name")
        quarantine.add_argument("--reason", required=True)
        dismiss = sub.add_parser("dismiss", help="dismiss a review item, with a reason")
        dismiss.add_argument("item", type=int)
        dismiss.add_argument("--reason", required=True)
        release = sub.add_parser("release", help="ask for a release (an approval request)")
        release.add_argument("name")
        release.add_argument("--reason", required=True)
        for cmd in (register, listing, show, quarantine, dismiss, release):
            add_token_argument(cmd)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _register(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability="plugins.manage")
        try:
            manifest = json.loads(Path(options["file"]).read_text())
        except (OSError, ValueError) as exc:
            raise ControlPlaneError(
                "PLUGIN_MANIFEST_INVALID", f"cannot read {options['file']}: {exc}"
            ) from exc
        tenant = None if options["shared"] else actor.tenant
        plugin = services.plugin_register(manifest=manifest, actor=actor, tenant=tenant)
        self.stdout.write(
            f"{plugin.name} {plugin.version} registered ({plugin.state}) {plugin.manifest_hash}"
        )

    def _list(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability="plugins.read")
        for plugin in selectors.plugins_visible(principal=actor):
            self.stdout.write(
                f"{plugin.name}\t{plugin.state}\t{','.join(plugin.state_codes) or '-'}\t"
                f"{plugin.scope or 'shared'}\t{plugin.kind}\t{plugin.version}"
            )

    def _show(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability="plugins.read")
        plugin = selectors.plugin_visible(principal=actor, name=options["name"])
        if plugin is None:
            raise ControlPlaneError("PLUGIN_NOT_FOUND", f"no plugin {options['name']!r} in reach")
        self.stdout.write(json.dumps(selectors.plugin_health(plugin), indent=2, sort_keys=True))

    def _quarantine(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability="plugins.manage")
        plugin = services.plugin_quarantine(name=options["name"], actor=actor, reason=options["reason"])
        self.stdout.write(f"{plugin.name} {plugin.state} {','.join(plugin.state_codes)}")

    def _dismiss(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability="plugins.review")
        item = services.review_decide(
            item_id=options["item"], actor=actor, decision="dismiss", reason=options["reason"]
        )
        self.stdout.write(f"review {item.pk} {item.status}")

    def _release(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability="plugins.manage")
        approval = services.plugin_release_request(
            name=options["name"], actor=actor, reason=options["reason"]
        )
        self.stdout.write(
            f"approval {approval.pk} {approval.status} quorum={approval.quorum} "
            f"content_hash={approval.content_hash}"
        )
