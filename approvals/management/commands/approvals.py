"""`manage.py approvals list | approve ID | reject ID` — decisions by a named human principal."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals import services
from approvals.models import ApprovalRequest
from controlplane.identity.selectors import principal_get, tenant_get
from controlplane.kernel.errors import ControlPlaneError


class Command(BaseCommand):
    help = "List approval requests, or approve/reject one as a human principal (--as TENANT/NAME)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument("--status", default="pending")
        for verb in ("approve", "reject"):
            cmd = sub.add_parser(verb)
            cmd.add_argument("id")
            cmd.add_argument("--as", dest="actor", required=True, help="the deciding principal, TENANT/NAME")
            cmd.add_argument("--reason", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "list":
                requests = ApprovalRequest.objects.filter(status=options["status"]).select_related(
                    "requested_by__tenant"
                )
                for approval in requests:
                    self.stdout.write(
                        f"{approval.pk}\t{approval.status}\t{approval.risk_tier}\tquorum={approval.quorum}\t"
                        f"{approval.subject_kind}:{approval.subject_id}\t{approval.requested_by.ref}"
                    )
                return
            tenant_slug, _, name = options["actor"].partition("/")
            actor = principal_get(tenant=tenant_get(slug=tenant_slug), name=name)
            approval = ApprovalRequest.objects.filter(pk=options["id"], tenant=actor.tenant).first()
            if approval is None:
                raise ControlPlaneError("APPROVAL_NOT_FOUND", f"no approval request {options['id']}")
            decided = services.approval_decide(
                approval=approval,
                actor=actor,
                decision=options["action"],
                reason=options["reason"],
                content_hash=approval.content_hash,
            )
            self.stdout.write(f"{decided.pk} {decided.status} ({decided.approvals_count()}/{decided.quorum})")
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
