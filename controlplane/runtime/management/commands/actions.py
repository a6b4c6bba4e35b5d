"""`manage.py actions list [--json] | show NAME`: the actions a plan step may name, with their tiers and
input schemas (the installation's registry: a read, no token; the API's `GET /api/v1/actions/` is the same
list for a principal)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.runtime.api import InstalledActionSerializer
from controlplane.runtime.selectors import actions_installed


def _inputs(schema: dict[str, Any]) -> str:
    """The input fields in one line: required ones plain, optional ones with `?`."""
    required = set(schema.get("required", []))
    fields = [f"{name}{'' if name in required else '?'}" for name in schema.get("properties", {})]
    return ", ".join(fields) or "(none)"


class Command(BaseCommand):
    help = "List the installed actions (name, version, base risk tier, executor, skill, inputs) or show one."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        listing = sub.add_parser("list", help="every installed action, one a line (--json: with schemas)")
        listing.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="one action's contract: input and output JSON Schemas")
        show.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        actions = actions_installed()
        if options["verb"] == "show":
            found = [a for a in actions if a.name == options["name"]]
            if not found:
                raise CommandError(f"PLAN_UNKNOWN_ACTION: no installed action {options['name']!r}")
            self.stdout.write(json.dumps(InstalledActionSerializer(found[0]).data, indent=2, sort_keys=True))
            return
        if options["json"]:
            self.stdout.write(
                json.dumps(InstalledActionSerializer(actions, many=True).data, indent=2, sort_keys=True)
            )
            return
        self.stdout.write("action\tversion\ttier\texecutor\tskill\tinputs (? optional)")
        for action in actions:
            self.stdout.write(
                f"{action.name}\t{action.version}\t{action.risk_tier}\t{action.executor}\t"
                f"{action.skill.name}@{action.skill.version}\t{_inputs(action.input_schema)}"
            )
