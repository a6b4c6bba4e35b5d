"""`manage.py approvals list | show ID | approve ID | reject ID` — decisions by an authenticated person.

`approve` and `reject` act for the person whose API token is in `CONTROLPLANE_TOKEN` (or `--token-file`),
with the capability the API requires (`approvals.decide`), through the same service (separation of
duties, humans only, one decision per person, quorum). The decider first reads the content with `show`
and types its hash back with `--content-hash`: an approval is bound to what was seen.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals import services
from approvals.models import ApprovalRequest
from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.kernel.errors import ControlPlaneError


class Command(BaseCommand):
    help = "List approval requests; show one; approve or reject one as the person whose token is given."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument("--status", default="pending")
        show = sub.add_parser("show", help="the exact content being approved, and its content hash")
        show.add_argument("id")
        add_token_argument(show)
        for verb in ("approve", "reject"):
            cmd = sub.add_parser(verb)
            cmd.add_argument("id")
            cmd.add_argument("--reason", required=True)
            cmd.add_argument(
                "--content-hash", required=True, help="the content hash `approvals show ID` printed"
            )
            add_token_argument(cmd)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            action = options["action"]
            if action == "list":
                self._list(options)
            elif action == "show":
                self._show(options)
            else:
                self._decide(action, options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _list(self, options: dict[str, Any]) -> None:
        requests = ApprovalRequest.objects.filter(status=options["status"]).select_related(
            "requested_by__tenant"
        )
        for approval in requests:
            self.stdout.write(
                f"{approval.pk}\t{approval.status}\t{approval.risk_tier}\tquorum={approval.quorum}\t"
                f"{approval.subject_kind}:{approval.subject_id}\t{approval.requested_by.ref}"
            )

    def _approval(self, options: dict[str, Any], *, capability: str) -> tuple[Any, ApprovalRequest]:
        actor = cli_principal(options, capability=capability)
        approval = ApprovalRequest.objects.filter(pk=options["id"], tenant_id=actor.tenant_id).first()
        if approval is None:
            raise ControlPlaneError("APPROVAL_NOT_FOUND", f"no approval request {options['id']}")
        return actor, approval

    def _show(self, options: dict[str, Any]) -> None:
        _, approval = self._approval(options, capability="approvals.read")
        self.stdout.write(
            f"{approval.pk} {approval.status} {approval.risk_tier} quorum={approval.quorum} "
            f"({approval.approvals_count()} approved)"
        )
        self.stdout.write(f"subject {approval.subject_kind}:{approval.subject_id}")
        self.stdout.write(f"requested by {approval.requested_by.ref}")
        self.stdout.write(f"reasons {' '.join(approval.reason_codes) or '-'}")
        self.stdout.write(json.dumps(approval.summary, indent=2, sort_keys=True))
        self.stdout.write(f"content_hash {approval.content_hash}")

    def _decide(self, verb: str, options: dict[str, Any]) -> None:
        actor, approval = self._approval(options, capability="approvals.decide")
        decided = services.approval_decide(
            approval=approval,
            actor=actor,
            decision=verb,
            reason=options["reason"],
            content_hash=options["content_hash"].strip(),
        )
        self.stdout.write(f"{decided.pk} {decided.status} ({decided.approvals_count()}/{decided.quorum})")
