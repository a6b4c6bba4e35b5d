"""`manage.py reasons list | docs [--check]`: the reason-code catalogue and its generated document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from controlplane.kernel.docs import generated_doc_write
from controlplane.kernel.reasons import CATALOGUE

DOC = Path(settings.BASE_DIR) / "docs" / "reason-codes.md"


def render() -> str:
    lines = [
        "# Reason codes",
        "",
        "Generated from `controlplane/kernel/reasons.py` by `manage.py reasons docs`; do not edit by hand.",
        "Every refusal carries one of these codes: in the API body (`code`), the console, the ledger",
        "(`reason_codes`) and CLI errors.",
        "",
        "| code | HTTP | meaning |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{r.code}` | {r.status} | {r.description} |" for r in CATALOGUE.values()]
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "List reason codes, or write docs/reason-codes.md (--check fails if it is stale)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list")
        docs = sub.add_parser("docs")
        docs.add_argument("--check", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            for entry in CATALOGUE.values():
                self.stdout.write(f"{entry.code}\t{entry.status}\t{entry.description}")
            return
        generated_doc_write(
            path=DOC,
            text=render(),
            command="reasons docs",
            check=options["check"],
            stdout=self.stdout,
            count=f"{len(CATALOGUE)} codes",
        )
