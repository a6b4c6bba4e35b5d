"""`manage.py trace show TRACE_ID [--tenant SLUG] [--json]`: the tree of one action, from the ledger."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.models import Tenant
from controlplane.kernel.errors import ControlPlaneError
from controlplane.runtime.traces import TraceNode, trace_get


class Command(BaseCommand):
    help = "Show a trace: intent -> plan -> verdicts -> approvals -> step runs -> outcomes, with ledger seqs."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        show = sub.add_parser("show", help="print the tree of one trace")
        show.add_argument("trace_id")
        show.add_argument("--tenant", help="only this tenant's part of the trace (default: every tenant)")
        show.add_argument("--json", action="store_true", help="the same JSON as the API")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = None
        try:
            if options["tenant"]:
                tenant = Tenant.objects.filter(slug=options["tenant"]).first()
                if tenant is None:
                    raise ControlPlaneError("TENANT_NOT_FOUND", f"no tenant {options['tenant']!r}")
            trace = trace_get(trace_id=options["trace_id"], tenant=tenant)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(trace.as_dict(), indent=2, sort_keys=True, default=str))
            return
        self.stdout.write(f"trace {trace.trace_id} tenant {trace.tenant} ({trace.event_count} ledger events)")
        for index, root in enumerate(trace.roots):
            self._node(root, prefix="", last=index == len(trace.roots) - 1)

    def _node(self, node: TraceNode, *, prefix: str, last: bool) -> None:
        branch = "└─ " if last else "├─ "
        ledger = f"#{node.seq} {node.hash[:16]}" if node.seq is not None else "(no ledger event)"
        codes = f" [{', '.join(node.reason_codes)}]" if node.reason_codes else ""
        extra = ""
        if node.kind == "step":
            extra = f" verdict={node.detail['verdict']} tier={node.detail['tier']}"
        elif node.kind == "decision" and node.detail.get("reason"):
            extra = f" reason={node.detail['reason']!r}"
        self.stdout.write(f"{prefix}{branch}{node.title}: {node.status}{extra}{codes}  {ledger}")
        child_prefix = prefix + ("   " if last else "│  ")
        for index, child in enumerate(node.children):
            self._node(child, prefix=child_prefix, last=index == len(node.children) - 1)
