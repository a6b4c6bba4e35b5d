"""`manage.py contracts list | docs [--check]`: the contract registry and its generated document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from controlplane.kernel.contracts import COMMAND, EVENT, QUERY, REGISTRY, Contract
from controlplane.kernel.docs import generated_doc_write

DOC = Path(settings.BASE_DIR) / "docs" / "contracts.md"
_SECTIONS = ((COMMAND, "Commands"), (QUERY, "Queries"), (EVENT, "Events"))


def _surfaces(contract: Contract) -> list[str]:
    lines = [f"- owner: `{contract.owner}`; capability: `{contract.capability or '-'}`"]
    if contract.kind == EVENT:
        lines.append(f"- ledger type: `{contract.ledger_type}` (the schema below is its `data`)")
    lines += [f"- API: `{path}`" for path in contract.api]
    if contract.service:
        lines.append(f"- service: `{contract.service}`")
    lines += [f"- CLI: `{command}`" for command in contract.cli]
    return lines


def render() -> str:
    out = [
        "# Contracts",
        "",
        "Generated from every app's `contracts.py` (gathered by `controlplane/kernel/contracts.py`) by",
        "`manage.py contracts docs`; do not edit by hand.",
        "The control plane's commands, queries and events, each with its owner, the surfaces that implement",
        "it and a JSON Schema (draft 2020-12): for a command or query, its input; for an event, the ledger",
        "payload (`data`) of the event type `controlplane.<name>`. Event schemas are closed objects: the",
        "runtime writing an undocumented field fails the test suite; consumers should still ignore fields",
        "they do not know. Every event the action flow writes is validated against its contract in",
        "`tests/project/test_contracts.py`.",
        "",
        "| contract | kind | owner | surface |",
        "| --- | --- | --- | --- |",
    ]
    for kind, _ in _SECTIONS:
        for contract in REGISTRY.of_kind(kind):
            surface = contract.api[0] if contract.api and kind != EVENT else contract.ledger_type
            out.append(
                f"| [`{contract.qualified_name}`](#{contract.qualified_name.lower().replace('.', '')}) "
                f"| {kind} | `{contract.owner}` | `{surface or contract.service}` |"
            )
    for kind, title in _SECTIONS:
        out += ["", f"## {title}"]
        for contract in REGISTRY.of_kind(kind):
            out += [
                "",
                f"### {contract.qualified_name}",
                "",
                contract.description,
                "",
                *_surfaces(contract),
                "",
                "```json",
                json.dumps(contract.schema, indent=2),
                "```",
            ]
    return "\n".join(out) + "\n"


class Command(BaseCommand):
    help = "List the control-plane contracts, or write docs/contracts.md (--check fails if it is stale)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list")
        docs = sub.add_parser("docs")
        docs.add_argument("--check", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            for contract in REGISTRY:
                surface = ", ".join(contract.api) if contract.kind != EVENT else contract.ledger_type
                self.stdout.write(f"{contract.qualified_name}\t{contract.kind}\t{contract.owner}\t{surface}")
            return
        generated_doc_write(
            path=DOC,
            text=render(),
            command="contracts docs",
            check=options["check"],
            stdout=self.stdout,
            count=f"{len(REGISTRY.contracts)} contracts",
        )
